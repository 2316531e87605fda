namespace Loom.Fuzzing;

/// <summary>
/// One parser under test: how to run it on an input, which exception types are its documented way of
/// refusing bad input, and what the mutator should know of its format.
/// </summary>
public sealed class FuzzTarget
{
    /// <summary>Short name, also the folder of its seeds under tests/fuzz-corpus.</summary>
    public required string Name { get; init; }

    /// <summary>What is parsed, through which entry point.</summary>
    public required string Description { get; init; }

    /// <summary>Runs the parser on one input; returning is acceptance, a <see cref="Rejections"/> exception with a one-line message is a refusal, anything else is a crash.</summary>
    public required Action<byte[], FuzzScratch> Run { get; init; }

    /// <summary>The exception types (and their subclasses) the parser documents for bad input.</summary>
    public IReadOnlyList<Type> Rejections { get; init; } = [];

    /// <summary>Share of a long run's executions, roughly in proportion to the target's speed so that every target gets minutes, not seconds.</summary>
    public int Weight { get; init; } = 1;

    /// <summary>Text formats get number-literal, invalid-UTF-8 and nesting mutations.</summary>
    public bool IsText { get; init; }

    /// <summary>Tokens worth inserting: punctuation, keywords, type ids, huge lengths.</summary>
    public IReadOnlyList<string> Dictionary { get; init; } = [];

    /// <summary>Open/close pairs for deep nesting.</summary>
    public IReadOnlyList<(string Open, string Close)> Nesting { get; init; } = [];

    /// <summary>For binary formats: the offsets of the fields of an input (counts, lengths, type ids), best effort.</summary>
    public Func<byte[], IReadOnlyList<FieldSpan>>? Fields { get; init; }

    /// <summary>Null when the outcome is acceptable; otherwise why it is a crash.</summary>
    public string? Judge(Exception? exception)
    {
        if (exception is null) return null;
        if (exception is FuzzCheckException) return exception.Message;
        string firstLine = exception.Message.Split('\n')[0].TrimEnd('\r');
        if (firstLine.Length > 200) firstLine = firstLine[..200] + "...";
        if (!Rejections.Any(type => type.IsInstanceOfType(exception)))
            return $"{exception.GetType().Name}: {firstLine}";
        if (exception.Message.Length == 0)
            return $"{exception.GetType().Name} with an empty message";
        if (exception.Message.Contains('\n') || exception.Message.Contains('\r'))
            return $"{exception.GetType().Name} with a multi-line message: {firstLine}";
        return null;
    }

    /// <summary>What makes two crashes the same bug: the exception type and the method that threw it (for a failed check, its message without numbers).</summary>
    public static string Signature(Exception exception)
    {
        if (exception is FuzzCheckException) return new string(exception.Message.Where(c => !char.IsDigit(c)).ToArray());
        var method = new System.Diagnostics.StackTrace(exception).GetFrame(0)?.GetMethod();
        bool multiLine = exception.Message.Contains('\n') || exception.Message.Contains('\r');
        return $"{exception.GetType().Name}{(multiLine ? " (multi-line)" : "")} at {method?.DeclaringType?.Name}.{method?.Name}";
    }
}

/// <summary>Thrown by a target's own checks of a parser's result (a reason that is not one line, a decoded tokenizer that loses text): always a crash.</summary>
public sealed class FuzzCheckException(string message) : Exception(message);

/// <summary>A private folder of one fuzzing worker, where file-reading parsers get their input.</summary>
public sealed class FuzzScratch : IDisposable
{
    public FuzzScratch()
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        Folder = Directory.CreateDirectory(Path.Combine(root, $"loom-fuzz-{Environment.ProcessId}-{Guid.NewGuid():N}")).FullName;
    }

    public string Folder { get; }

    /// <summary>Writes the input to a file of that name in the folder and returns its path.</summary>
    public string File(string name, byte[] input)
    {
        string path = Path.Combine(Folder, name);
        System.IO.File.WriteAllBytes(path, input);
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
            // An abandoned (hung) worker may still hold a file open; the folder is left for the OS to clean.
        }
    }
}
