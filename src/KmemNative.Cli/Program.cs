namespace KmemNative.Cli;

/// <summary>The process entry point: the only place that touches <see cref="Console"/>.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        bool interactive = !Console.IsInputRedirected;
        bool ci = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI"));
        var io = new CliIo(Console.In, Console.Out, Console.Error, InteractiveInput: interactive)
        {
            InStream = interactive ? null : Console.OpenStandardInput(),
            ShowProgress = !Console.IsOutputRedirected && !Console.IsErrorRedirected && !ci,
            Terminal = interactive && !Console.IsOutputRedirected ? new Scripting.SystemConsole() : null,
        };
        return KmemCli.Run(args, io);
    }
}
