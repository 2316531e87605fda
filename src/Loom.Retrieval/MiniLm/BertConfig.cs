namespace Loom.Retrieval.MiniLm;

/// <summary>A BERT encoder's shape; the defaults are all-MiniLM-L6-v2's. Saved in the weight cache's header.</summary>
/// <param name="VocabSize">Rows of the word embedding table.</param>
/// <param name="Hidden">Width of every token's state.</param>
/// <param name="Layers">Encoder layers (attention, then the feed-forward block, each followed by a LayerNorm).</param>
/// <param name="Heads">Attention heads; Hidden / Heads is each head's width.</param>
/// <param name="Intermediate">Width of the feed-forward block's hidden layer.</param>
/// <param name="MaxPositions">Rows of the absolute position table: the longest input in tokens.</param>
/// <param name="TypeVocabSize">Rows of the token-type (segment) table.</param>
/// <param name="LayerNormEpsilon">Added to the variance in every LayerNorm.</param>
internal sealed record BertConfig(
    int VocabSize = 30522,
    int Hidden = 384,
    int Layers = 6,
    int Heads = 12,
    int Intermediate = 1536,
    int MaxPositions = 512,
    int TypeVocabSize = 2,
    float LayerNormEpsilon = 1e-12f)
{
    public int HeadDim => Hidden / Heads;
}
