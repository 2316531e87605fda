using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Loom.IO;

/// <summary>How <see cref="FileWalker"/> treats symbolic links; null means the default.</summary>
public sealed record FileWalkOptions
{
    /// <summary>Follow links whose target lies outside the root folder (off by default: a link must not pull
    /// <c>/etc/os-release</c> into an index).</summary>
    public bool FollowLinksOutsideRoot { get; init; }
    /// <summary>Skip files and folders whose name starts with a dot.</summary>
    public bool SkipHidden { get; init; } = true;
}

/// <summary>A file found by the walk, or a path it passed over and why (<see cref="SkipReason"/> set).</summary>
public sealed record WalkedFile(string Path, string? SkipReason = null);

/// <summary>
/// Walks a folder for the files an ingester or corpus reader may open: regular files only (never a FIFO, which blocks a
/// reader forever, or a device such as <c>/dev/zero</c>, which never ends), each real file once however many links lead
/// to it, links out of the root refused unless allowed, and link cycles cut. Paths come in ordinal order per folder.
/// </summary>
public static class FileWalker
{
    /// <summary>Every file below <paramref name="root"/>, and every path passed over with its reason.</summary>
    public static IEnumerable<WalkedFile> Walk(string root, FileWalkOptions? options = null)
    {
        options ??= new FileWalkOptions();
        string fullRoot = Path.GetFullPath(root);
        string realRoot = RealPath(fullRoot) ?? fullRoot;
        var visitedFolders = new HashSet<string>(StringComparer.Ordinal) { realRoot };
        var visitedFiles = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>();
        pending.Push(fullRoot);
        while (pending.Count > 0)
        {
            string folder = pending.Pop();
            var entries = new DirectoryInfo(folder).EnumerateFileSystemInfos("*", new EnumerationOptions { IgnoreInaccessible = true, AttributesToSkip = 0 })
                .OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
            var subfolders = new List<string>();
            foreach (var entry in entries)
            {
                if (options.SkipHidden && entry.Name.StartsWith('.')) continue;
                if (entry.Name.Contains('\uFFFD') && !Exists(entry.FullName))
                {
                    yield return new WalkedFile(Path.Combine(folder, EscapedName(folder, entry.Name)),
                        "its name is not valid UTF-8 (the bad bytes are shown as \\xNN), so it cannot be opened by name; rename it");
                    continue;
                }
                string? real = entry.LinkTarget is null ? entry.FullName : RealPath(entry.FullName);
                if (real is null)
                {
                    yield return new WalkedFile(entry.FullName, "broken link");
                    continue;
                }
                if (entry.LinkTarget is not null && !options.FollowLinksOutsideRoot && !IsInside(real, realRoot))
                {
                    yield return new WalkedFile(entry.FullName, $"link to '{real}', outside the folder");
                    continue;
                }
                if (Directory.Exists(real))
                {
                    if (visitedFolders.Add(real)) subfolders.Add(entry.FullName);
                    else yield return new WalkedFile(entry.FullName, "link to a folder already walked (a cycle or a second path)");
                    continue;
                }
                if (!IsRegularFile(real))
                {
                    yield return new WalkedFile(entry.FullName, "not a regular file (a FIFO, device or socket)");
                    continue;
                }
                if (!visitedFiles.Add(real))
                {
                    yield return new WalkedFile(entry.FullName, $"the same file as one already read ('{real}')");
                    continue;
                }
                yield return new WalkedFile(entry.FullName);
            }
            for (int i = subfolders.Count - 1; i >= 0; i--) pending.Push(subfolders[i]);
        }
    }

    /// <summary>
    /// Whether <paramref name="path"/> (links followed) is a regular file: false for FIFOs, character and block devices,
    /// sockets, folders and missing paths. Reads the file type from the operating system on Linux (statx, whose layout is
    /// the same on every architecture); elsewhere any existing file counts as regular.
    /// </summary>
    public static bool IsRegularFile(string path)
    {
        if (!OperatingSystem.IsLinux()) return File.Exists(path);
        var buffer = new byte[256]; // struct statx
        int result;
        try { result = StatX(AtCurrentFolder, path, 0, StatXType, buffer); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return File.Exists(path); }
        if (result != 0) return false;
        ushort mode = BitConverter.ToUInt16(buffer, 28); // stx_mode
        return (mode & FileTypeMask) == RegularFileType;
    }

    /// <summary>Whether a path names anything (a link counts, even a broken one).</summary>
    static bool Exists(string path) => File.Exists(path) || Directory.Exists(path) || new FileInfo(path).LinkTarget is not null;

    /// <summary>
    /// A name as the folder holds it, its bytes that are not UTF-8 written as <c>\xNN</c>. .NET decodes such names with
    /// U+FFFD for the bad bytes, a string no file answers to; the raw name is found by listing the folder's bytes (Linux).
    /// </summary>
    static string EscapedName(string folder, string lossyName)
    {
        if (!OperatingSystem.IsLinux()) return lossyName;
        try
        {
            nint listing = OpenFolder(folder);
            if (listing == 0) return lossyName;
            try
            {
                nint entry;
                while ((entry = NextEntry(listing)) != 0)
                {
                    byte[] raw = RawBytes(entry + DirentName);
                    if (Encoding.UTF8.GetString(raw) == lossyName) return Escape(raw);
                }
            }
            finally { CloseFolder(listing); }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
        return lossyName;
    }

    static byte[] RawBytes(nint name)
    {
        int length = 0;
        while (Marshal.ReadByte(name, length) != 0) length++;
        var bytes = new byte[length];
        Marshal.Copy(name, bytes, 0, length);
        return bytes;
    }

    static string Escape(ReadOnlySpan<byte> raw)
    {
        var text = new StringBuilder();
        while (raw.Length > 0)
        {
            if (Rune.DecodeFromUtf8(raw, out var rune, out int consumed) == System.Buffers.OperationStatus.Done) text.Append(rune.ToString());
            else foreach (byte b in raw[..consumed]) text.Append(CultureInfo.InvariantCulture, $"\\x{b:X2}");
            raw = raw[consumed..];
        }
        return text.ToString();
    }

    const int DirentName = 19;             // offsetof(struct dirent64, d_name) on 64-bit Linux

    [DllImport("libc", EntryPoint = "opendir", SetLastError = true)]
    static extern nint OpenFolder([MarshalAs(UnmanagedType.LPUTF8Str)] string path);

    [DllImport("libc", EntryPoint = "readdir64", SetLastError = true)]
    static extern nint NextEntry(nint listing);

    [DllImport("libc", EntryPoint = "closedir")]
    static extern int CloseFolder(nint listing);

    const int AtCurrentFolder = -100;      // AT_FDCWD
    const uint StatXType = 0x1;             // STATX_TYPE
    const int FileTypeMask = 0xF000;        // S_IFMT
    const int RegularFileType = 0x8000;     // S_IFREG

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    static extern int StatX(int directory, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte[] buffer);

    /// <summary>
    /// The canonical path with every link on the way resolved (POSIX realpath on Linux), or null for a broken link or a
    /// link loop. Elsewhere only the entry's own link chain is followed.
    /// </summary>
    static string? RealPath(string path)
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                nint resolved = CanonicalPath(path, 0);
                if (resolved == 0) return null;
                try { return Marshal.PtrToStringUTF8(resolved); }
                finally { Marshal.FreeHGlobal(resolved); }
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
        }
        try
        {
            var info = new FileInfo(path);
            string resolved = info.LinkTarget is null ? info.FullName : info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? "";
            return File.Exists(resolved) || Directory.Exists(resolved) ? resolved : null;
        }
        catch (IOException) { return null; }
    }

    [DllImport("libc", EntryPoint = "realpath", SetLastError = true)]
    static extern nint CanonicalPath([MarshalAs(UnmanagedType.LPUTF8Str)] string path, nint resolved);

    static bool IsInside(string path, string root) =>
        path == root || path.StartsWith(Path.EndsInDirectorySeparator(root) ? root : root + Path.DirectorySeparatorChar, StringComparison.Ordinal);
}
