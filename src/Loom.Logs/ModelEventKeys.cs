namespace Loom.Logs;

/// <summary>
/// Gives lines mined now the event keys a <see cref="LogModel"/> was trained on: the parser's miner is seeded with the
/// model's templates first, so a line of a known template gets that template's key whatever order the new log is in;
/// a template the model never saw gets a key of its own, <c>new:ID</c>, which the model reads as unknown.
/// </summary>
public sealed class ModelEventKeys
{
    readonly Dictionary<int, string> keys = [];

    /// <summary>Seeds <paramref name="parser"/> (before it parses anything) with the templates of <paramref name="model"/>.</summary>
    public ModelEventKeys(LogModel model, LogParser parser)
    {
        for (int id = EventVocabulary.UnknownId + 1; id < model.Vocabulary.Count; id++)
        {
            string key = model.Vocabulary.Key(id);
            if (model.Vocabulary.Template(key) is { } text) keys.TryAdd(parser.Miner.Add(text).Id, key);
        }
    }

    /// <summary>The model's key for a mined template id.</summary>
    public string Key(int templateId) => keys.TryGetValue(templateId, out var key) ? key : "new:" + Sessionizer.EventKey(templateId);

    /// <summary>The session with its events (mined template ids, as the sessionizers name them) renamed to the model's keys.</summary>
    public LogSession Rename(LogSession session) => session with
    {
        Events = [.. session.Events.Select(e => int.TryParse(e, System.Globalization.CultureInfo.InvariantCulture, out int id) ? Key(id) : e)],
    };
}
