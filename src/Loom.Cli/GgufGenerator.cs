using Loom.LlamaCpp;
using Loom.Serving;

namespace Loom.Cli;

/// <summary>A GGUF file served by llama.cpp through Loom's batching engine (its own tokenizer, Loom's sampler).</summary>
internal static class GgufGenerator
{
    public static GeneratorHandle Open(string path, int threads, int slots = 1)
    {
        var decoder = LlamaCppDecoder.Load(path, slots, new LlamaCppOptions(Threads: threads));
        var engine = new GenerationEngine(Path.GetFileNameWithoutExtension(path), decoder, decoder.Tokenizer);
        return new GeneratorHandle(engine, async () =>
        {
            await engine.DisposeAsync().ConfigureAwait(false);
            decoder.Dispose();
        });
    }
}
