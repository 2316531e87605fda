using System.Runtime.InteropServices;
using System.Text;

namespace Loom.Text;

/// <summary>
/// Unicode normalization (NFC, NFD, NFKC, NFKD) through the ICU library the operating system ships.
/// Loom builds with invariant globalization, where <see cref="string.Normalize(NormalizationForm)"/>
/// leaves non-ASCII text unchanged; tokenizers such as Qwen2's normalize to NFC first, so a
/// decomposed "é" must become one character before its pieces are looked up.
/// </summary>
internal static unsafe class UnicodeNormalizer
{
    private static readonly Lazy<Icu?> Library = new(Icu.Load);

    /// <summary>Whether ICU was found on this machine.</summary>
    public static bool IsAvailable => Library.Value is not null;

    public static string Normalize(string text, NormalizationForm form)
    {
        // Characters below U+0300 never change under NFC, and ASCII never changes under any form.
        var unchangedBelow = form == NormalizationForm.FormC ? '\u0300' : '\u0080';
        if (text.AsSpan().IndexOfAnyInRange(unchangedBelow, '\uFFFF') < 0)
        {
            return text;
        }
        var icu = Library.Value ?? throw new InvalidOperationException($"Unicode normalization {form} needs the ICU library (libicuuc), which is not installed");
        var instance = icu.Instance(form);
        var capacity = text.Length * 3 + 16; // NFKD of one character is at most 18 code units; this covers text
        while (true)
        {
            var buffer = new char[capacity];
            var error = 0;
            int length;
            fixed (char* source = text)
            fixed (char* destination = buffer)
            {
                length = icu.Normalize(instance, source, text.Length, destination, capacity, &error);
            }
            if (error == BufferOverflowError && length > capacity)
            {
                capacity = length;
                continue;
            }
            if (error > 0)
            {
                throw new InvalidOperationException($"ICU normalization {form} failed with error {error}");
            }
            return new string(buffer, 0, length);
        }
    }

    private const int BufferOverflowError = 15; // U_BUFFER_OVERFLOW_ERROR

    private sealed class Icu
    {
        public delegate* unmanaged<int*, nint> Nfc;
        public delegate* unmanaged<int*, nint> Nfd;
        public delegate* unmanaged<int*, nint> Nfkc;
        public delegate* unmanaged<int*, nint> Nfkd;
        public delegate* unmanaged<nint, char*, int, char*, int, int*, int> Normalize;

        public nint Instance(NormalizationForm form)
        {
            var error = 0;
            var instance = form switch
            {
                NormalizationForm.FormC => Nfc(&error),
                NormalizationForm.FormD => Nfd(&error),
                NormalizationForm.FormKC => Nfkc(&error),
                _ => Nfkd(&error),
            };
            return error > 0 || instance == 0 ? throw new InvalidOperationException($"ICU has no {form} normalizer (error {error})") : instance;
        }

        public static Icu? Load()
        {
            // Debian and Ubuntu ship libicuuc.so.NN and suffix every symbol with the version (unorm2_normalize_72).
            for (var version = 90; version >= 50; version--)
            {
                if (NativeLibrary.TryLoad($"libicuuc.so.{version}", out var handle) && TryBind(handle, "_" + version) is { } icu)
                {
                    return icu;
                }
            }
            return NativeLibrary.TryLoad("libicuuc.so", out var plain) ? TryBind(plain, "") : null;
        }

        private static Icu? TryBind(nint handle, string suffix)
        {
            if (NativeLibrary.TryGetExport(handle, "unorm2_getNFCInstance" + suffix, out var nfc)
                && NativeLibrary.TryGetExport(handle, "unorm2_getNFDInstance" + suffix, out var nfd)
                && NativeLibrary.TryGetExport(handle, "unorm2_getNFKCInstance" + suffix, out var nfkc)
                && NativeLibrary.TryGetExport(handle, "unorm2_getNFKDInstance" + suffix, out var nfkd)
                && NativeLibrary.TryGetExport(handle, "unorm2_normalize" + suffix, out var normalize))
            {
                return new Icu
                {
                    Nfc = (delegate* unmanaged<int*, nint>)nfc,
                    Nfd = (delegate* unmanaged<int*, nint>)nfd,
                    Nfkc = (delegate* unmanaged<int*, nint>)nfkc,
                    Nfkd = (delegate* unmanaged<int*, nint>)nfkd,
                    Normalize = (delegate* unmanaged<nint, char*, int, char*, int, int*, int>)normalize,
                };
            }
            return null;
        }
    }
}
