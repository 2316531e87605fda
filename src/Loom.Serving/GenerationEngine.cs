using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Loom.Models;
using Loom.Tensors;
using Loom.Text;
using Loom.Text.Structured;

namespace Loom.Serving;

/// <summary>Limits of a <see cref="GenerationEngine"/>; null means the default.</summary>
public sealed record GenerationEngineOptions
{
    /// <summary>Requests that may wait for a free slot before new ones are refused.</summary>
    public int? QueueLimit { get; init; }

    /// <summary>
    /// The longest prompt prefilled whole on admission: a longer one is prefilled in slices while the running sequences
    /// keep streaming (along their decode steps, see <see cref="PrefillTokensPerDecodeStep"/>), and in slices of this
    /// many tokens as steps of their own when nothing else is decoding. A multiple of
    /// <see cref="PrefillChunkAlignment"/> (slices start on the attention's query blocks, so a sequence gets the very
    /// numbers of a whole prefill); 0 prefills every prompt whole. Null means 256.
    /// </summary>
    public int? PrefillChunkTokens { get; init; }

    /// <summary>The model's chat format (<see cref="JinjaChatFormat"/> for an imported model); null means Loom's own.</summary>
    public IChatFormat? ChatFormat { get; init; }

    /// <summary>What <see cref="PrefillChunkTokens"/> must be a multiple of.</summary>
    public const int PrefillChunkAlignment = 64;

    /// <summary>
    /// Prompt tokens that ride along each decode step while other sequences are running: a waiting prompt is prefilled
    /// this many tokens at a time inside the running sequences' decode step, in one pass over the weights, so their
    /// tokens keep coming at nearly the idle pace; the prompt's own first token comes later than from whole slices.
    /// At most <see cref="TransformerDecoder.MaxSliceTokens"/>; 0 runs the slices of <see cref="PrefillChunkTokens"/>
    /// as steps of their own (a sequence then gets the very numbers of a whole prefill). With a
    /// <see cref="PrefillStepBudget"/> this is the most a step takes. Null means 16.
    /// </summary>
    public int? PrefillTokensPerDecodeStep { get; init; }

    /// <summary>
    /// How long a decode step that carries prompt tokens may take, as a multiple of a plain decode step: the engine times
    /// its steps and sizes each slice to fit (one token at least, <see cref="PrefillTokensPerDecodeStep"/> at most), so
    /// the running streams keep their pace on any machine while a long prompt goes in; the prompt takes about
    /// budget / (budget − 1) times the compute of its prefill. 0 takes <see cref="PrefillTokensPerDecodeStep"/> tokens
    /// every step. Null means 1.5.
    /// </summary>
    public double? PrefillStepBudget { get; init; }
}

/// <summary>
/// Continuous batching: one loop owns the model. Requests arrive over a channel; the loop admits
/// each into a free KV-cache slot (prefill), then decodes every active sequence together, one
/// token per step, and streams each sequence's text to its own reader. A cancelled request frees
/// its slot at the next step. A prompt longer than <see cref="GenerationEngineOptions.PrefillChunkTokens"/> is
/// prefilled one slice per step (the oldest such request first): inside the decode step of the others while they run
/// (as many tokens as keep the step within <see cref="GenerationEngineOptions.PrefillStepBudget"/>), as a step of its
/// own otherwise.
/// </summary>
public sealed class GenerationEngine : ITextGenerator, IAsyncDisposable
{
    readonly IBatchDecoder decoder;
    readonly ITokenizer tokenizer;
    readonly bool[] endsGeneration; // [vocab] end-of-text and end-of-turn tokens: a sequence stops there
    readonly Channel<Job> incoming;
    readonly CancellationTokenSource shutdown = new();
    readonly Task loop;
    readonly int prefillChunk; // tokens per prefill slice; 0: whole prompts
    readonly int rideAlong;    // prompt tokens taken along a decode step (the most, when paced); 0: slices run on their own
    readonly PrefillPacer? pacer; // sizes the slices taken along to the step budget; null: always rideAlong tokens
    long admitted;

    public GenerationEngine(string modelName, IBatchDecoder decoder, ITokenizer tokenizer, GenerationEngineOptions? options = null)
    {
        ModelName = modelName;
        this.decoder = decoder;
        this.tokenizer = tokenizer;
        endsGeneration = new bool[decoder.VocabSize];
        for (int id = 0; id < Math.Min(decoder.VocabSize, tokenizer.VocabSize); id++) endsGeneration[id] = tokenizer.IsEndOfGeneration(id);
        ChatFormat = options?.ChatFormat ?? LoomChatFormat.Instance;
        foreach (var stop in ChatFormat.StopSequences) // the format's end-of-turn token (<|im_end|>, <|eot_id|>) ends a sequence too
            if (tokenizer.TokenToId(stop) is int stopId && stopId < endsGeneration.Length && tokenizer.IsSpecial(stopId)) endsGeneration[stopId] = true;
        int queueLimit = options?.QueueLimit ?? 256;
        prefillChunk = options?.PrefillChunkTokens ?? 256;
        if (prefillChunk < 0 || prefillChunk % GenerationEngineOptions.PrefillChunkAlignment != 0)
            throw new ArgumentException($"GenerationEngineOptions.PrefillChunkTokens must be 0 or a positive multiple of {GenerationEngineOptions.PrefillChunkAlignment}, got {prefillChunk}");
        rideAlong = options?.PrefillTokensPerDecodeStep ?? 16;
        if (rideAlong is < 0 or > TransformerDecoder.MaxSliceTokens)
            throw new ArgumentException($"GenerationEngineOptions.PrefillTokensPerDecodeStep must be in [0, {TransformerDecoder.MaxSliceTokens}], got {rideAlong}");
        double budget = options?.PrefillStepBudget ?? 1.5;
        if (budget is not 0 and not > 1) throw new ArgumentException($"GenerationEngineOptions.PrefillStepBudget must be 0 (off) or above 1, got {budget}");
        if (budget > 1 && rideAlong > 0) pacer = new PrefillPacer(budget, rideAlong);
        incoming = Channel.CreateBounded<Job>(new BoundedChannelOptions(queueLimit) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        loop = Task.Factory.StartNew(RunLoop, TaskCreationOptions.LongRunning);
    }

    public string ModelName { get; }
    public int ContextLength => decoder.ContextLength;
    public ITokenizer Tokenizer => tokenizer;

    /// <summary>How conversations become prompts (<see cref="EncodeChat"/>) and where chat answers stop.</summary>
    public IChatFormat ChatFormat { get; }

    /// <summary>Sequences being decoded right now.</summary>
    public int ActiveSequences { get; private set; }

    /// <summary>Tokens generated since start, over all requests.</summary>
    public long GeneratedTokens => Interlocked.Read(ref generatedTokens);
    long generatedTokens;

    public int CountTokens(string text) => tokenizer.Encode(text).Length;

    public int[] EncodeChat(IReadOnlyList<ChatTurn> turns) => ChatFormat.Encode(turns, tokenizer, addGenerationPrompt: true).Ids;

    public async IAsyncEnumerable<GenerationUpdate> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var job = CreateJob(request, cancellationToken);
        if (!incoming.Writer.TryWrite(job))
            await incoming.Writer.WriteAsync(job, cancellationToken).ConfigureAwait(false);
        await foreach (var update in job.Output.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            yield return update;
        if (job.Failure is not null) throw job.Failure;
    }

    Job CreateJob(GenerationRequest request, CancellationToken cancellationToken)
    {
        request.Sampling.Validate();
        var prompt = request.PromptTokens ?? tokenizer.Encode(request.Prompt);
        if (request.AddBos && tokenizer.BosId is int bos) prompt = [bos, .. prompt];
        if (prompt.Length == 0) throw new ArgumentException("the prompt is empty");
        if (prompt.Length >= ContextLength)
            throw new ArgumentException($"the prompt has {prompt.Length} tokens; the context holds {ContextLength}, leaving no room to generate");
        if (request.MaxTokens is < 1) throw new ArgumentException($"max_tokens must be at least 1, got {request.MaxTokens}");
        foreach (int id in request.Sampling.LogitBias?.Keys ?? [])
            if (id >= decoder.VocabSize)
                throw new ChatRequestException("SamplingOptions.LogitBias", $"SamplingOptions.LogitBias names token id {id}, outside the vocabulary of {decoder.VocabSize}");
        if (request.TopLogprobs is < 0 or > TokenLogprobs.MaxTop)
            throw new ArgumentException($"GenerationRequest.TopLogprobs must be in [0, {TokenLogprobs.MaxTop}], got {request.TopLogprobs}");
        int room = ContextLength - prompt.Length;
        int maxTokens = Math.Min(request.MaxTokens ?? room, room);
        var constraint = request.Format?.Start(tokenizer);
        return new Job(request, prompt, maxTokens, new Sampler(request.Sampling, decoder.VocabSize), tokenizer, cancellationToken) { Constraint = constraint };
    }

    void RunLoop()
    {
        var slots = new Job?[decoder.SlotCount];
        var activeSlots = new int[decoder.SlotCount];
        var nextTokens = new int[decoder.SlotCount];
        var logits = new float[decoder.SlotCount * decoder.VocabSize];
        var sliceLogits = new float[decoder.VocabSize];
        var reader = incoming.Reader;
        while (!shutdown.IsCancellationRequested)
        {
            int active = 0;
            foreach (var job in slots) if (job is not null) active++;
            if (active == 0)
            {
                try
                {
                    if (!reader.WaitToReadAsync(shutdown.Token).AsTask().GetAwaiter().GetResult()) return;
                }
                catch (OperationCanceledException) { return; }
            }

            // Admit waiting requests into free slots: prefill each short prompt and sample its first token; a long
            // prompt waits for its slices.
            for (int slot = 0; slot < slots.Length; slot++)
            {
                if (slots[slot] is not null || !reader.TryRead(out var job)) continue;
                if (job.Cancellation.IsCancellationRequested) { job.Output.Writer.TryComplete(); continue; }
                job.Admitted = admitted++;
                if (SliceLength(job) < job.Prompt.Length) { slots[slot] = job; continue; }
                try
                {
                    var row = logits.AsSpan(0, decoder.VocabSize);
                    decoder.Prefill(slot, job.Prompt, row);
                    job.Prefilled = job.Prompt.Length;
                    slots[slot] = job;
                    Emit(job, Sample(job, row), slot, slots);
                }
                catch (Exception e)
                {
                    Fail(job, e, slot, slots);
                }
            }

            // The oldest prompt still being prefilled gets one slice per step: along the decode step of the running
            // sequences when there are any, else a slice of its own; its first token once the prompt is in.
            int prefilling = -1;
            for (int slot = 0; slot < slots.Length; slot++)
                if (slots[slot] is { IsPrefilling: true } job && !job.Cancellation.IsCancellationRequested && (prefilling < 0 || job.Admitted < slots[prefilling]!.Admitted))
                    prefilling = slot;

            // Drop cancelled sequences, then decode all the others together.
            int count = 0;
            for (int slot = 0; slot < slots.Length; slot++)
            {
                var job = slots[slot];
                if (job is null) continue;
                if (job.Cancellation.IsCancellationRequested) { Finish(job, slot, slots, null); continue; }
                if (job.IsPrefilling) continue;
                activeSlots[count] = slot;
                nextTokens[count] = job.LastToken;
                count++;
            }
            ActiveSequences = count;
            bool alongside = prefilling >= 0 && count > 0 && rideAlong > 0;
            if (prefilling >= 0 && !alongside) PrefillSlice(prefilling, slots, sliceLogits);
            if (count == 0) continue;
            try
            {
                long stepStart = Stopwatch.GetTimestamp();
                int sliceTokens = 0;
                if (alongside)
                {
                    var job = slots[prefilling]!;
                    var slice = job.Prompt.AsSpan(job.Prefilled, Math.Min(pacer?.Tokens() ?? rideAlong, job.Prompt.Length - job.Prefilled));
                    decoder.DecodeWithSlice(activeSlots.AsSpan(0, count), nextTokens.AsSpan(0, count), logits.AsSpan(0, count * decoder.VocabSize),
                        prefilling, job.Prefilled, slice, sliceLogits);
                    job.Prefilled += slice.Length;
                    sliceTokens = slice.Length;
                }
                else decoder.Decode(activeSlots.AsSpan(0, count), nextTokens.AsSpan(0, count), logits.AsSpan(0, count * decoder.VocabSize));
                pacer?.Observe(sliceTokens, Stopwatch.GetElapsedTime(stepStart).TotalSeconds);
            }
            catch (Exception e)
            {
                for (int i = 0; i < count; i++) Fail(slots[activeSlots[i]]!, e, activeSlots[i], slots);
                if (alongside) Fail(slots[prefilling]!, e, prefilling, slots);
                continue;
            }
            if (alongside && !slots[prefilling]!.IsPrefilling) SampleAndEmit(prefilling, slots, sliceLogits);
            for (int i = 0; i < count; i++) SampleAndEmit(activeSlots[i], slots, logits.AsSpan(i * decoder.VocabSize, decoder.VocabSize));
        }
    }

    /// <summary>
    /// Tokens of the job's next prefill slice: a whole slice (shortened to end on a multiple of the chunk alignment after
    /// slices taken along decode steps), or all the rest when what would remain is so short that its products would
    /// take another kernel (<see cref="ProjectionOps.GemvRows"/>).
    /// </summary>
    int SliceLength(Job job)
    {
        int rest = job.Prompt.Length - job.Prefilled;
        int slice = prefillChunk - job.Prefilled % GenerationEngineOptions.PrefillChunkAlignment;
        return prefillChunk == 0 || rest - slice <= ProjectionOps.GemvRows ? rest : slice;
    }

    /// <summary>Prefills the next slice of the prompt in <paramref name="slot"/>; after the last one, samples and streams the first token.</summary>
    void PrefillSlice(int slot, Job?[] slots, Span<float> row)
    {
        var job = slots[slot]!;
        try
        {
            var slice = job.Prompt.AsSpan(job.Prefilled, SliceLength(job));
            if (job.Prefilled == 0) decoder.Prefill(slot, slice, row);
            else decoder.Append(slot, slice, row);
            job.Prefilled += slice.Length;
            if (!job.IsPrefilling) Emit(job, Sample(job, row), slot, slots);
        }
        catch (Exception e)
        {
            Fail(job, e, slot, slots);
        }
    }

    /// <summary>Samples the next token of the sequence in <paramref name="slot"/> from its logits row and streams it; a failure ends that sequence alone.</summary>
    void SampleAndEmit(int slot, Job?[] slots, Span<float> row)
    {
        var job = slots[slot]!;
        try
        {
            Emit(job, Sample(job, row), slot, slots);
        }
        catch (Exception e)
        {
            Fail(job, e, slot, slots);
        }
    }

    /// <summary>Draws a sequence's next token from its logits row and keeps the token's log-probabilities when the request asks.</summary>
    int Sample(Job job, Span<float> row)
    {
        Constrain(job, row);
        int token = job.Sampler.Sample(row, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(job.History));
        if (job.TopLogprobs is int top && !endsGeneration[token]) job.Logprobs.Add(TokenLogprobs.Compute(row, token, top, tokenizer));
        return token;
    }

    /// <summary>Adds a sampled token to its sequence, streams the text it completes, and ends the sequence when it should.</summary>
    void Emit(Job job, int token, int slot, Job?[] slots)
    {
        Interlocked.Increment(ref generatedTokens);
        if (endsGeneration[token]) { Finish(job, slot, slots, FinishReason.Stop); return; }
        job.Constraint?.Accept(token);
        job.History.Add(token);
        job.LastToken = token;
        job.Generated++;
        string text = job.Stops.Push(job.Text.Append(token));
        if (text.Length > 0 || job.Logprobs.Count > 0) job.Output.Writer.TryWrite(new GenerationUpdate(text, job.Prompt.Length, job.Generated, Logprobs: job.TakeLogprobs()));
        if (job.Stops.Stopped || job.Constraint?.IsFinished == true) Finish(job, slot, slots, FinishReason.Stop);
        else if (job.Generated >= job.MaxTokens) Finish(job, slot, slots, FinishReason.Length);
    }

    /// <summary>Structured output: every token that would leave the job's format gets probability zero.</summary>
    static void Constrain(Job job, Span<float> row)
    {
        if (job.Constraint is { } constraint && !constraint.ApplyMask(row))
            throw new InvalidOperationException("the model's vocabulary cannot spell the next part of the output format");
    }

    void Finish(Job job, int slot, Job?[] slots, FinishReason? reason)
    {
        decoder.Release(slot);
        slots[slot] = null;
        if (reason is FinishReason finish)
        {
            string rest = job.Stops.Push(job.Text.Flush()) + job.Stops.Flush();
            job.Output.Writer.TryWrite(new GenerationUpdate(rest, job.Prompt.Length, job.Generated, finish, job.TakeLogprobs()));
        }
        job.Output.Writer.TryComplete();
    }

    void Fail(Job job, Exception error, int slot, Job?[] slots)
    {
        job.Failure = error;
        if (ReferenceEquals(slots[slot], job)) { decoder.Release(slot); slots[slot] = null; }
        job.Output.Writer.TryComplete();
    }

    public async ValueTask DisposeAsync()
    {
        shutdown.Cancel();
        incoming.Writer.TryComplete();
        await loop.ConfigureAwait(false);
        shutdown.Dispose();
    }

    sealed class Job(GenerationRequest request, int[] prompt, int maxTokens, Sampler sampler, ITokenizer tokenizer, CancellationToken cancellation)
    {
        public int[] Prompt { get; } = prompt;
        public int MaxTokens { get; } = maxTokens;
        public Sampler Sampler { get; } = sampler;
        public CancellationToken Cancellation { get; } = cancellation;
        public List<int> History { get; } = [.. prompt];
        public StopSequenceMatcher Stops { get; } = new(request.Stop);
        /// <summary>Turns generated tokens into text, holding back a character split across tokens; special tokens never become text.</summary>
        public IncrementalDecoder Text { get; } = new(tokenizer, skipSpecialTokens: true);
        public int? TopLogprobs { get; } = request.TopLogprobs;
        /// <summary>Log-probabilities of the tokens not yet sent in an update.</summary>
        public List<TokenLogprob> Logprobs { get; } = [];
        public Channel<GenerationUpdate> Output { get; } = Channel.CreateUnbounded<GenerationUpdate>(new UnboundedChannelOptions { SingleWriter = true, SingleReader = true });
        public int LastToken { get; set; }
        /// <summary>Prompt tokens in the KV cache so far.</summary>
        public int Prefilled { get; set; }
        public bool IsPrefilling => Prefilled < Prompt.Length;
        /// <summary>Admission order: the oldest prompt being prefilled gets the next slice.</summary>
        public long Admitted { get; set; }
        public int Generated { get; set; }
        public Exception? Failure { get; set; }

        /// <summary>The pending log-probabilities (null when the request asks for none), and clears them.</summary>
        public IReadOnlyList<TokenLogprob>? TakeLogprobs()
        {
            if (TopLogprobs is null) return null;
            TokenLogprob[] taken = [.. Logprobs];
            Logprobs.Clear();
            return taken;
        }

        /// <summary>Where the output stands in its format (structured output), or null.</summary>
        public TokenMatcher? Constraint { get; init; }
    }
}
