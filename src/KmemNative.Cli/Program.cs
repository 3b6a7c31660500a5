namespace KmemNative.Cli;

/// <summary>The process entry point: the only place that touches <see cref="Console"/>.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        var io = new CliIo(Console.In, Console.Out, Console.Error, InteractiveInput: !Console.IsInputRedirected);
        return KmemCli.Run(args, io);
    }
}
