using System.Text.Json;
using Loom.Serving.Feedback;
using Loom.Tests.Text;

namespace Loom.Tests.Feedback;

/// <summary>`loom improve` as a user runs it: init, run (promoted), versions, rollback, promote, and one-line errors.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class ImproveCommandTests : IDisposable
{
    readonly string directory = Path.Combine(Path.GetTempPath(), "loom-improve-cli-" + Guid.NewGuid().ToString("N"));

    public ImproveCommandTests() => Directory.CreateDirectory(directory);

    public void Dispose() => Directory.Delete(directory, recursive: true);

    static (int Code, string Output, string Error) Cli(params string[] args) => CliRun.Run(args);

    [Fact]
    public async Task InitRunVersionsRollbackAndPromote()
    {
        string home = Path.Combine(directory, "home"), storePath = Path.Combine(directory, "feedback.db");
        var (code, stdout, stderr) = Cli("improve", "init", "--home", home, "--model", ImproveData.BaseCheckpoint(directory));
        Assert.True(code == 0, stderr);
        Assert.StartsWith("registered v0 from", stdout);

        using (var store = SqliteFeedbackStore.Open(storePath)) await ImproveData.JudgeAsync(store, 24, adversarial: false);
        string heldOut = Path.Combine(directory, "heldout.jsonl");
        File.WriteAllLines(heldOut, ImproveData.HeldOut.Select(p => JsonSerializer.Serialize(new { prompt = p.Prompt, references = p.References })));
        string[] run = ["improve", "run", "--home", home, "--store", storePath, "--heldout", heldOut, "--judge", "contains", "--dpo-steps", "15", "--batch", "4",
            "--lr", "0.002", "--beta", "1", "--temperature", "0.7", "--samples", "16", "--max-new-tokens", "8", "--threads", "1"];
        (code, stdout, stderr) = Cli(run);
        Assert.True(code == 0, stderr);
        Assert.Contains("feedback: 24 judgement(s) after id 0 → 24 pair(s), 0 correction(s)", stdout);
        Assert.Contains("evaluation: v1 vs v0: win rate ", stdout);
        Assert.Matches(@"time: feedback [\d.]+ s, train [\d.]+ s, evaluate [\d.]+ s, register [\d.]+ s; total [\d.]+ s", stdout);
        Assert.Contains("promoted v1: win rate", stdout);
        Assert.Equal("v1", new ModelRegistry(home).Current);

        // No new feedback: nothing to do, and nothing changes.
        (code, stdout, stderr) = Cli(run);
        Assert.True(code == 0, stderr);
        Assert.Contains("nothing to do: 0 judgement(s) after id 24", stdout);

        (code, stdout, stderr) = Cli("improve", "versions", "--home", home);
        Assert.True(code == 0, stderr);
        var lines = stdout.TrimEnd().Split('\n');
        Assert.Equal(3, lines.Length);
        Assert.Matches(@"^\s+version\s+parent\s+method", lines[0]);
        Assert.Matches(@"^\s+v0\s+-\s+base\s", lines[1]);
        Assert.Matches(@"^\*\s+v1\s+v0\s+sft\+dpo\s.*\s24\s+24\s+0\s+24\s+0\.\d{3}\s+promoted$", lines[2]);

        (code, stdout, stderr) = Cli("improve", "rollback", "--home", home);
        Assert.True(code == 0, stderr);
        Assert.Equal("rolled back from v1 to v0", stdout.Trim());
        Assert.Equal("v0", new ModelRegistry(home).Current);
        (code, _, stderr) = Cli("improve", "rollback", "--home", home);
        Assert.Equal(1, code);
        Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.Contains("no version was served before 'v0'", stderr);

        (code, stdout, stderr) = Cli("improve", "promote", "--home", home, "--version", "v1", "--reason", "checked by hand");
        Assert.True(code == 0, stderr);
        Assert.Equal("serving v1 (was v0)", stdout.Trim());
        Assert.Equal(("promote", "checked by hand"), (new ModelRegistry(home).History()[^1].Action, new ModelRegistry(home).History()[^1].Reason));
    }

    [Fact]
    public void MistakesGetOneLineNamingTheFlagOrFile()
    {
        string home = Path.Combine(directory, "home");
        string heldOut = Path.Combine(directory, "heldout.jsonl");
        File.WriteAllLines(heldOut, ["{\"prompt\":\"review 4\"}"]);
        var cases = new (string[] Args, string Expected)[]
        {
            (["improve", "init", "--home", home, "--model", Path.Combine(directory, "missing")], "missing"),
            (["improve", "versions", "--home", home], "no versions"),
            (["improve", "run", "--home", home, "--store", Path.Combine(directory, "f.db"), "--heldout", heldOut, "--judge", "bogus"], "--judge is \"bogus\""),
            (["improve", "run", "--home", home, "--store", Path.Combine(directory, "f.db"), "--heldout", heldOut, "--judge", "contains"], "needs a \"reference\""),
            (["improve", "run", "--home", home, "--store", Path.Combine(directory, "f.db"), "--heldout", Path.Combine(directory, "none.jsonl"), "--judge", "f1"], "none.jsonl"),
            (["improve", "rollback", "--home", home, "--to", "v0"], "no version is served"),
            (["improve", "promote", "--home", home, "--version", "../x"], "version name '../x'"),
        };
        foreach (var (args, expected) in cases)
        {
            var (code, _, stderr) = Cli(args);
            Assert.True(code == 1, string.Join(' ', args));
            Assert.Single(stderr.TrimEnd().Split('\n'));
            Assert.Contains(expected, stderr);
        }
    }
}
