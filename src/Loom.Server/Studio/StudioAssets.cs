using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Loom.Server.Studio;

/// <summary>The page, its script and its stylesheet: files embedded in this assembly (Studio/Assets), read once.</summary>
internal static class StudioAssets
{
    public static void Map(WebApplication app)
    {
        var page = Read("studio.html");
        var script = Read("studio.js");
        var style = Read("studio.css");
        app.MapGet(StudioApp.Path, () => Results.Bytes(page, "text/html; charset=utf-8"));
        app.MapGet(StudioApp.Path + "/studio.js", () => Results.Bytes(script, "text/javascript; charset=utf-8"));
        app.MapGet(StudioApp.Path + "/studio.css", () => Results.Bytes(style, "text/css; charset=utf-8"));
    }

    static byte[] Read(string name)
    {
        using var stream = typeof(StudioAssets).Assembly.GetManifestResourceStream("Loom.Server.Studio." + name)
            ?? throw new InvalidOperationException($"the studio asset {name} is not embedded in {typeof(StudioAssets).Assembly.GetName().Name}");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
