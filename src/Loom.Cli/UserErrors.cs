namespace Loom.Cli;

/// <summary>Turns the exceptions that mean "bad input" into one line on stderr and exit code 1; anything else is a bug and keeps its stack trace.</summary>
internal static class UserErrors
{
    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or FormatException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {FlagNames.Rephrase(e.Message.Split('\n')[0].TrimEnd())}");
            return 1;
        }
    }
}
