using Loom.Models;
using Loom.Models.Gguf;
using Loom.Text;
using UglyToad.PdfPig.Content;
using UglyToad.PdfPig.Core;
using UglyToad.PdfPig.Fonts.Standard14Fonts;
using UglyToad.PdfPig.Writer;

namespace Loom.Fuzzing;

/// <summary>
/// Writes the seeds of the binary and generated formats (GGUF, safetensors, config.json, tokenizer.json,
/// PDF) with the project's own writers, so the committed files are what Loom itself produces. The text
/// seeds (JSONL, HTML, CSV, logs, request bodies) are written by hand in the corpus folder.
/// </summary>
public static class SeedCorpus
{
    const string Text = "to be or not to be, that is the question. whether tis nobler in the mind to suffer";

    /// <summary>Writes (replacing) the generated seeds under <paramref name="root"/>; returns the files written.</summary>
    public static IReadOnlyList<string> WriteGenerated(string root)
    {
        var written = new List<string>();
        string Write(string target, string name, byte[] bytes)
        {
            string path = Path.Combine(Directory.CreateDirectory(Path.Combine(root, target)).FullName, name);
            File.WriteAllBytes(path, bytes);
            written.Add(path);
            return path;
        }

        var characters = CharTokenizer.Train([Text]);
        var bpe = BpeTrainer.Train([Text + " " + Text.ToUpperInvariant()], 300);
        var charModel = new Transformer(new LlamaConfig { VocabSize = characters.VocabSize, Dim = 8, Layers = 1, Heads = 2, KvHeads = 1, HiddenDim = 16, MaxSeq = 16 }, 7);
        var bpeModel = new Transformer(new LlamaConfig { VocabSize = bpe.VocabSize, Dim = 8, Layers = 1, Heads = 2, KvHeads = 2, HiddenDim = 8, MaxSeq = 8, TiedEmbeddings = false, BosId = 0, EosId = 1 }, 8);

        string scratch = Directory.CreateTempSubdirectory("loom-seeds-").FullName;
        try
        {
            byte[] Gguf(Transformer model, ITokenizer tokenizer, GgmlType type)
            {
                string path = Path.Combine(scratch, "model.gguf");
                LlamaGguf.Export(path, model, tokenizer, type, "seed");
                return File.ReadAllBytes(path);
            }
            Write("gguf", "char-f32.gguf", Gguf(charModel, characters, GgmlType.F32));
            Write("gguf", "bpe-f16.gguf", Gguf(bpeModel, bpe, GgmlType.F16));

            byte[] Safetensors(Transformer model)
            {
                string path = Path.Combine(scratch, "model.safetensors");
                SafeTensors.Write(path, model.Parameters, new Dictionary<string, string> { ["format"] = "pt" });
                return File.ReadAllBytes(path);
            }
            Write("safetensors", "char-model.safetensors", Safetensors(charModel));

            byte[] Config(LlamaConfig config)
            {
                string path = Path.Combine(scratch, "config.json");
                config.Save(path);
                return File.ReadAllBytes(path);
            }
            Write("config", "char.json", Config(charModel.Config));
            Write("config", "bpe-untied.json", Config(bpeModel.Config));
            Write("config", "tiny-preset.json", Config(LlamaConfig.Preset("tiny")));

            byte[] TokenizerFile(ITokenizer tokenizer)
            {
                tokenizer.Save(scratch);
                return File.ReadAllBytes(Path.Combine(scratch, Tokenizer.FileName));
            }
            Write("tokenizer", "char.json", TokenizerFile(characters));
            Write("tokenizer", "bpe.json", TokenizerFile(bpe));

            var builder = new PdfDocumentBuilder();
            var font = builder.AddStandard14Font(Standard14Font.Helvetica);
            builder.AddPage(PageSize.A6).AddText("Quarterly revenue grew", 12, new PdfPoint(20, 300), font);
            builder.AddPage(PageSize.A6).AddText("Second page", 12, new PdfPoint(20, 300), font);
            Write("pdf", "two-pages.pdf", builder.Build());
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
        return written;
    }
}
