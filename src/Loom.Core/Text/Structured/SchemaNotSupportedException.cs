namespace Loom.Text.Structured;

/// <summary>
/// A JSON Schema or regular expression that constrained decoding cannot honour: a keyword outside the
/// supported subset (named with its JSON path), a malformed value, or a language with no complete value.
/// Never skipped silently; servers answer it with a 400.
/// </summary>
public sealed class SchemaNotSupportedException(string message) : ArgumentException(message);
