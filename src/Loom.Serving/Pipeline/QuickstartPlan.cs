using Loom.Models;

namespace Loom.Serving.Pipeline;

/// <summary>
/// The sizes of one quickstart run: how much of the docs each stage reads, the model, and each stage's share of the time.
/// </summary>
public sealed record QuickstartPlan
{
    public int MembersRead { get; init; }         // doc members read from the SDK before sampling
    public int CorpusMembers { get; init; }       // members written to the pretraining corpus
    public int VocabSize { get; init; }           // byte-level BPE vocabulary
    public LlamaConfig Model { get; init; } = new(); // architecture; the vocabulary size comes from the tokenizer
    public int Batch { get; init; }               // sequences per pretraining step
    public int PretrainSteps { get; init; }       // scheduled steps (the time budget may stop earlier)
    public double PretrainShare { get; init; }    // fraction of the overall budget for pretraining
    public int TuneExamples { get; init; }        // instruction examples written from the docs
    public int HeldOut { get; init; }             // instruction examples kept for evaluation
    public int TuneSteps { get; init; }           // scheduled tuning steps
    public double TuneShare { get; init; }        // fraction of the overall budget for tuning
    public double IngestShare { get; init; }      // fraction of the overall budget for embedding documents
    public int IndexMembers { get; init; }        // members ingested into the retrieval index
    public int Questions { get; init; }           // demo questions answered with citations
    public int SampleCount { get; init; }         // held-out prompts shown before/after tuning
    public int AnswerTokens { get; init; }        // tokens generated per answer
    public int ValidationTokens { get; init; }    // validation tokens for perplexity

    /// <summary>The sizes for a fast (tiny) or a regular run.</summary>
    public static QuickstartPlan For(bool fast) => fast
        ? new QuickstartPlan
        {
            MembersRead = 4000, CorpusMembers = 2000, VocabSize = 1024,
            Model = new LlamaConfig { Dim = 64, Layers = 2, Heads = 4, KvHeads = 4, HiddenDim = 192, MaxSeq = 320 },
            Batch = 4, PretrainSteps = 80, PretrainShare = 0.3, TuneExamples = 260, HeldOut = 10, TuneSteps = 60, TuneShare = 0.15, IngestShare = 0.15,
            IndexMembers = 120, Questions = 2, SampleCount = 3, AnswerTokens = 16, ValidationTokens = 4096,
        }
        : new QuickstartPlan
        {
            MembersRead = 80000, CorpusMembers = 16000, VocabSize = 2048,
            Model = new LlamaConfig { Dim = 128, Layers = 4, Heads = 4, KvHeads = 4, HiddenDim = 384, MaxSeq = 256 },
            Batch = 8, PretrainSteps = 600, PretrainShare = 0.45, TuneExamples = 3000, HeldOut = 50, TuneSteps = 250, TuneShare = 0.17, IngestShare = 0.13,
            IndexMembers = 2500, Questions = 4, SampleCount = 5, AnswerTokens = 40, ValidationTokens = 32768,
        };
}
