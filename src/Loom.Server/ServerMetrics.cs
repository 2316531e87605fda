using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Loom.Serving;

namespace Loom.Server;

/// <summary>Counters for GET /metrics, in the Prometheus text exposition format.</summary>
public sealed class ServerMetrics
{
    readonly ConcurrentDictionary<(string Path, int Status), long> requests = new();
    long activeRequests;
    double requestSeconds;
    long requestCount;
    readonly object secondsGate = new();

    public void RequestStarted() => Interlocked.Increment(ref activeRequests);

    public void RequestFinished(string path, int status, TimeSpan elapsed)
    {
        Interlocked.Decrement(ref activeRequests);
        requests.AddOrUpdate((path, status), 1, (_, n) => n + 1);
        lock (secondsGate) { requestSeconds += elapsed.TotalSeconds; requestCount++; }
    }

    /// <summary>The HTTP counters, the batching loop's load and the chat pipeline's counters.</summary>
    public string Render(int activeSequences, ChatMetricsSnapshot chat)
    {
        var text = new StringBuilder();
        text.Append("# HELP loom_requests_total HTTP requests by path and status.\n# TYPE loom_requests_total counter\n");
        foreach (var ((path, status), count) in requests.OrderBy(r => r.Key.Path).ThenBy(r => r.Key.Status))
            text.Append(CultureInfo.InvariantCulture, $"loom_requests_total{{path=\"{path}\",status=\"{status}\"}} {count}\n");
        Append(text, "loom_requests_active", "gauge", "Requests in progress.", Interlocked.Read(ref activeRequests));
        Append(text, "loom_active_sequences", "gauge", "Sequences being decoded by the batching loop.", activeSequences);
        Append(text, "loom_generations_total", "counter", "Chat and completion calls that reached the pipeline (one per choice).", chat.Requests);
        Append(text, "loom_generation_failures_total", "counter", "Calls refused or failed inside the pipeline, or abandoned by the client.", chat.Failures);
        Append(text, "loom_prompt_tokens_total", "counter", "Prompt tokens processed.", chat.PromptTokens);
        Append(text, "loom_completion_tokens_total", "counter", "Tokens generated.", chat.CompletionTokens);
        text.Append(CultureInfo.InvariantCulture, $"# HELP loom_generation_seconds_total Time spent generating.\n# TYPE loom_generation_seconds_total counter\nloom_generation_seconds_total {chat.Seconds}\n");
        lock (secondsGate)
        {
            text.Append("# HELP loom_request_duration_seconds Time to answer a request.\n# TYPE loom_request_duration_seconds summary\n");
            text.Append(CultureInfo.InvariantCulture, $"loom_request_duration_seconds_sum {requestSeconds}\nloom_request_duration_seconds_count {requestCount}\n");
        }
        return text.ToString();
    }

    static void Append(StringBuilder text, string name, string type, string help, long value) =>
        text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n{name} {value}\n");
}
