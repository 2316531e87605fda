using System.Security.Cryptography;
using System.Text;
using Loom.Serving.Feedback;

namespace Loom.Server.Studio;

/// <summary>
/// Which of an item's responses an annotator sees, and in which order: pairwise shows the first two, rank shows all,
/// the single-response kinds (rating, correction, thumbs) show the first. The order is a shuffle seeded by the
/// annotator and the item, so it differs between annotators, stays the same across reloads, and the server can
/// rebuild what was shown when the judgement arrives without trusting the browser to say it.
/// </summary>
public static class BlindOrder
{
    /// <summary>Indices into <see cref="FeedbackItem.Responses"/>, in the order shown.</summary>
    public static int[] Shown(FeedbackItem item, JudgementKind kind, string annotator)
    {
        int count = kind switch
        {
            JudgementKind.Pairwise => 2,
            JudgementKind.Rank => item.Responses.Count,
            _ => 1,
        };
        if (item.Responses.Count < count || count == 0)
            throw new ArgumentException($"FeedbackItem.Responses of item '{item.Id}' holds {item.Responses.Count} responses; a {kind} task needs at least {Math.Max(count, 1)}");
        var order = Enumerable.Range(0, count).ToArray();
        byte[] seed = SHA256.HashData(Encoding.UTF8.GetBytes(annotator + "\n" + item.Id));
        new Random(BitConverter.ToInt32(seed, 0)).Shuffle(order);
        return order;
    }

    /// <summary>The responses in the order shown.</summary>
    public static IReadOnlyList<FeedbackResponse> ShownResponses(FeedbackItem item, JudgementKind kind, string annotator) =>
        [.. Shown(item, kind, annotator).Select(i => item.Responses[i])];
}
