using System.CommandLine;
using Loom.Server;
using Loom.Server.Studio;
using Loom.Serving.Feedback;

namespace Loom.Cli.Commands;

/// <summary><c>loom studio</c>: the feedback studio over a feedback store, alone (no model needed).</summary>
internal static class StudioCommand
{
    internal static Command Create()
    {
        var store = new Option<string>("--store") { Description = "Feedback store: a SQLite file, or a PostgreSQL connection string", DefaultValueFactory = _ => "feedback.db" };
        var host = new Option<string>("--host") { Description = "Address to bind (loopback by default)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port (0 picks a free one)", DefaultValueFactory = _ => 8090 };
        var allowedHosts = new Option<string[]>("--allowed-host") { Description = "Host header name answered besides the bound address (NAME or NAME:PORT, repeatable)", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("studio", "Serve the feedback studio at /studio: people log in and compare, rank, rate, correct or thumb responses; owners see agreement, the arena leaderboard and export.")
        {
            store, host, port, allowedHosts,
        };
        command.SetAction((parseResult, cancellationToken) => RetrievalCli.RunAsync("studio", async () =>
        {
            int portNumber = parseResult.GetValue(port);
            if (portNumber is < 0 or > 65535) throw new ArgumentException($"--port must be 0..65535, got {portNumber}");
            using var feedback = await FeedbackStores.OpenAsync(parseResult.GetValue(store)!, cancellationToken);
            var options = new StudioOptions { Host = parseResult.GetValue(host)!, Port = portNumber, AllowedHosts = parseResult.GetValue(allowedHosts) ?? [] };
            await using var app = StudioApp.Build(feedback, options);
            return await ServeCommand.RunUntilCancelledAsync(app,
                addresses => $"loom studio: listening on {string.Join(", ", addresses.Select(a => new Uri(a, StudioApp.Path)))}", cancellationToken);
        }));
        return command;
    }
}
