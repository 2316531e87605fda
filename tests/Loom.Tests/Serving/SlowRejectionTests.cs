using Loom.Retrieval;
using Loom.Serving;
using Loom.Tests.Server;
using Loom.Text;
using Microsoft.Extensions.AI;

namespace Loom.Tests.Serving;

/// <summary>A real tokenizer that counts the texts it was asked to encode.</summary>
sealed class CountingTokenizer(ITokenizer inner) : ITokenizer
{
    int encodes;
    long encodedChars;

    public int Encodes => Volatile.Read(ref encodes);
    public long EncodedChars => Interlocked.Read(ref encodedChars);

    public int VocabSize => inner.VocabSize;
    public int? BosId => inner.BosId;
    public int? EosId => inner.EosId;
    public int? PadId => inner.PadId;

    public int[] Encode(string text, bool allowSpecialTokens = false)
    {
        Count(text.Length);
        return inner.Encode(text, allowSpecialTokens);
    }

    public void Encode(ReadOnlySpan<char> text, List<int> ids, bool allowSpecialTokens = false)
    {
        Count(text.Length);
        inner.Encode(text, ids, allowSpecialTokens);
    }

    void Count(int chars)
    {
        Interlocked.Increment(ref encodes);
        Interlocked.Add(ref encodedChars, chars);
    }

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false) => inner.Decode(ids, skipSpecialTokens);

    public int? TokenToId(string token) => inner.TokenToId(token);

    public string? IdToToken(int id) => inner.IdToToken(id);

    public bool IsSpecial(int id) => inner.IsSpecial(id);
    public byte[] TokenBytes(int id) => inner.TokenBytes(id);

    public void Save(string directory) => inner.Save(directory);
}

/// <summary>
/// Slow rejections (issue 18 item 8): a request that cannot fit the context is refused before the work proportional to
/// it: retrieval does not run for a question that alone overflows the context, and a message too long by its
/// characters alone is never tokenized.
/// </summary>
public sealed class SlowRejectionTests
{
    static string Words(int count) => string.Join(' ', Enumerable.Repeat("the quick brown fox jumps over the lazy dog", count / 9 + 1)).Split(' ').Take(count).Aggregate(
        new System.Text.StringBuilder(), (text, word) => text.Append(word).Append(' ')).ToString();

    [Fact]
    public async Task AQuestionThatAloneOverflowsTheContextIsRefusedBeforeRetrieval()
    {
        // Room for the grounding instruction (about 250 tokens of this small vocabulary) and a short question.
        var (transformer, tokenizer) = ServerFixture.BpeModel(5, maxSeq: 512);
        await using var model = LoomModel.Create(ServerFixture.ModelName, transformer, tokenizer);
        int searches = 0;
        using var rag = new RetrievalChatClient(model.AsIChatClient(), (query, ct) =>
        {
            Interlocked.Increment(ref searches);
            return Task.FromResult<IReadOnlyList<SearchHit>>([]);
        });
        var error = await Assert.ThrowsAsync<ChatRequestException>(() => rag.GetResponseAsync([new ChatMessage(ChatRole.User, Words(90_000))]));
        Assert.Equal(ChatRequestException.ContextLengthExceeded, error.Code);
        Assert.Equal(0, searches);
        // A question that fits is searched for, once.
        await rag.GetResponseAsync([new ChatMessage(ChatRole.User, "hello")], new ChatOptions { MaxOutputTokens = 2, Temperature = 0 });
        Assert.Equal(1, searches);
    }

    [Fact]
    public async Task AMessageTooLongByItsCharactersIsNeverTokenized()
    {
        var (transformer, bpe) = ServerFixture.BpeModel(5);
        var tokenizer = new CountingTokenizer(bpe);
        await using var model = LoomModel.Create(ServerFixture.ModelName, transformer, tokenizer);
        using var chat = LoomPipeline.Build(model.Engine, new LoomPipelineOptions { Limits = new ChatLimits { MaxOutputTokens = 8 } });
        // 50 MB of text: no tokenizer can fit it in a context of 160 tokens, whatever its longest token.
        string huge = new('a', 50_000_000);
        int before = tokenizer.Encodes;
        var error = await Assert.ThrowsAsync<ChatRequestException>(() => chat.GetResponseAsync([new ChatMessage(ChatRole.User, huge)]));
        Assert.Equal(ChatRequestException.ContextLengthExceeded, error.Code);
        Assert.Equal("messages", error.Field);
        Assert.Equal(before, tokenizer.Encodes);
        await Assert.ThrowsAsync<ChatRequestException>(async () =>
        {
            await foreach (var _ in chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.System, "be brief"), new ChatMessage(ChatRole.User, huge)])) { }
        });
        Assert.Equal(before, tokenizer.Encodes);
        // A short message is tokenized and answered as before.
        var answer = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hello")], new ChatOptions { MaxOutputTokens = 2, Temperature = 0 });
        Assert.NotNull(answer.FinishReason);
        Assert.True(tokenizer.Encodes > before);
        Assert.True(tokenizer.EncodedChars < 1000);
    }

    [Fact]
    public async Task ARawPromptTooLongByItsCharactersIsNeverTokenized()
    {
        var (transformer, bpe) = ServerFixture.BpeModel(5);
        var tokenizer = new CountingTokenizer(bpe);
        await using var model = LoomModel.Create(ServerFixture.ModelName, transformer, tokenizer);
        int before = tokenizer.Encodes;
        var error = Assert.Throws<ChatRequestException>(() => LoomChatClient.Request(model.Engine, new string('a', 50_000_000), null));
        Assert.Equal(ChatRequestException.ContextLengthExceeded, error.Code);
        Assert.Equal("prompt", error.Field);
        Assert.Equal(before, tokenizer.Encodes);
        // A prompt that fits is tokenized as before.
        Assert.Equal("hello", LoomChatClient.Request(model.Engine, "hello", null).Prompt);
        Assert.True(tokenizer.Encodes > before);
    }
}
