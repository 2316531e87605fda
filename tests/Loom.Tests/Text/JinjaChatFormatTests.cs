using System.Text.Json.Nodes;
using Loom.Models;
using Loom.Serving;
using Loom.Tests.Models;
using Loom.Text;
using Loom.Training.Tuning;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Text;

/// <summary>
/// A checkpoint's own chat template at work: Loom's format written as a Jinja template encodes exactly as Loom's format
/// does; a template in tokenizer_config.json is loaded with the checkpoint and used by the engine (prompt tokens and
/// stop token), the chat client and tuning (the target mask is the assistant turns, end marker included).
/// </summary>
public class JinjaChatFormatTests
{
    const string Alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,:;!?'\"()-\n";

    /// <summary>Loom's own layout as a Jinja template.</summary>
    const string LoomLayout =
        "{% for m in messages %}{{ '<|' + m.role + '|>\\n' + m.content + '<|end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

    /// <summary>A different layout over Loom's special tokens: a bos token, no newlines, an eos after the conversation.</summary>
    const string OtherLayout =
        "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% else %}{{ eos_token }}{% endif %}";

    static readonly List<ChatTurn> Conversation =
    [
        new("system", "You answer briefly."),
        new("user", "what is the quick brown fox?"),
        new("assistant", "a fox that jumps over the lazy dog."),
        new("user", "and the dog?"),
        new("assistant", "lazy."),
    ];

    static ByteLevelBpeTokenizer Tokenizer() => BpeTrainer.Train(["the quick brown fox jumps over the lazy dog. what is it? " + Alphabet], 300);

    [Fact]
    public void LoomsLayoutAsATemplateEncodesAsLoomsFormatDoes()
    {
        var tokenizer = Tokenizer();
        var format = new JinjaChatFormat(LoomLayout);
        foreach (bool prompt in new[] { true, false })
        {
            Assert.Equal(ChatTemplate.Format(Conversation, prompt), format.Format(Conversation, prompt));
            var (ids, mask) = format.Encode(Conversation, tokenizer, prompt);
            var (loomIds, loomMask) = ChatTemplate.Encode(Conversation, tokenizer, prompt);
            Assert.Equal(loomIds, ids);
            Assert.Equal(loomMask, mask);
        }
        Assert.Equal([ChatTemplate.End], format.StopSequences);
    }

    [Fact]
    public void TuningMasksTheAssistantTurnsAsTheTemplateRendersThem()
    {
        var tokenizer = Tokenizer();
        var format = new JinjaChatFormat(OtherLayout, bosToken: SpecialTokens.Bos, eosToken: SpecialTokens.EndOfText);
        var sequence = TokenSequence.FromTurns(Conversation, tokenizer, format);
        Assert.Equal(tokenizer.Encode(format.Format(Conversation, addGenerationPrompt: false), allowSpecialTokens: true), sequence.Ids);
        string targets = tokenizer.Decode([.. sequence.Ids.Where((_, i) => sequence.TargetMask[i])]);
        // The template closes the conversation with eos, so the last turn's span ends with it.
        Assert.Equal("a fox that jumps over the lazy dog.<|end|>lazy.<|end|><|endoftext|>", targets);
        Assert.Equal(tokenizer.TokenToId(SpecialTokens.End), SequenceLogProbs.EndId(tokenizer, format));
        Assert.Equal([SpecialTokens.End, SpecialTokens.EndOfText], format.StopSequences);

        var response = TokenSequence.FromResponse(Conversation[..2], "  a fox.  ", tokenizer, format);
        Assert.Equal("a fox.<|end|><|endoftext|>", tokenizer.Decode([.. response.Ids.Where((_, i) => response.TargetMask[i])]));
    }

    [Fact]
    public async Task ACheckpointWithATemplateIsServedInItsFormat()
    {
        var tokenizer = Tokenizer();
        var config = TestModels.Tiny with { VocabSize = tokenizer.VocabSize, MaxSeq = 96 };
        var model = TestModels.Random(config, 7);
        string folder = TestData.NewTemporaryDirectory();
        try
        {
            Checkpoint.Save(folder, model, tokenizer.Save);
            new JinjaChatFormat(OtherLayout, SpecialTokens.Bos, SpecialTokens.EndOfText).Save(folder);
            Assert.Equal(OtherLayout, JsonNode.Parse(File.ReadAllText(Path.Combine(folder, JinjaChatFormat.ConfigFileName)))!["chat_template"]!.GetValue<string>());

            await using var loom = LoomModel.Load(folder);
            var format = Assert.IsType<JinjaChatFormat>(loom.ChatFormat);
            Assert.Equal(SpecialTokens.Bos, format.BosToken);
            int[] prompt = tokenizer.Encode("<|bos|><|user|>hi<|end|><|assistant|>", allowSpecialTokens: true);
            Assert.Equal(prompt, loom.Engine.EncodeChat([new ChatTurn("user", " hi ")]));

            var client = new LoomChatClient(loom.Engine);
            var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, " hi ")], new ChatOptions { Temperature = 0, MaxOutputTokens = 8 });
            using var decoder = new TransformerDecoder(model);
            int end = tokenizer.TokenToId(SpecialTokens.End)!.Value;
            var tokens = TestModels.Greedy(decoder, 0, prompt, 8).TakeWhile(t => t != tokenizer.EosId && t != end).ToArray();
            Assert.Equal(tokenizer.Decode(tokens), response.Text);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void AFolderWithoutATemplateKeepsLoomsFormat()
    {
        string folder = TestData.NewTemporaryDirectory();
        try
        {
            Assert.Same(LoomChatFormat.Instance, ChatFormat.Load(folder));
            File.WriteAllText(Path.Combine(folder, JinjaChatFormat.ConfigFileName), """{"model_max_length": 2048}""");
            Assert.Same(LoomChatFormat.Instance, ChatFormat.Load(folder));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData("""{"chat_template": "{% if x %}never closed", "eos_token": "</s>"}""", "tokenizer_config.json: chat_template: chat template line 1, column 23: missing {% endif %}")]
    [InlineData("""{"chat_template": 5}""", "tokenizer_config.json: chat_template must be a string or a list of {name, template}")]
    [InlineData("""{"chat_template": [{"name": "tool_use", "template": "x"}]}""", "tokenizer_config.json: chat_template lists no template named \"default\"")]
    [InlineData("""{"chat_template": "x", "eos_token": 3}""", "tokenizer_config.json: eos_token must be a string or an object with content")]
    public void BadTokenizerConfigsAreOneLineErrorsNamingTheField(string json, string expected)
    {
        string folder = TestData.NewTemporaryDirectory();
        try
        {
            File.WriteAllText(Path.Combine(folder, JinjaChatFormat.ConfigFileName), json);
            var error = Assert.Throws<InvalidDataException>(() => ChatFormat.Load(folder));
            Assert.EndsWith(expected, error.Message);
            Assert.DoesNotContain('\n', error.Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void NamedTemplatesAndAddedTokenObjectsAreRead()
    {
        string folder = TestData.NewTemporaryDirectory();
        try
        {
            File.WriteAllText(Path.Combine(folder, JinjaChatFormat.ConfigFileName), """
                {"chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}"}],
                 "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"}
                """);
            var format = Assert.IsType<JinjaChatFormat>(ChatFormat.Load(folder));
            Assert.Equal("<s>hello", format.Format([new ChatTurn("user", "hello")], addGenerationPrompt: true));
            Assert.Equal("</s>", format.EosToken);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
