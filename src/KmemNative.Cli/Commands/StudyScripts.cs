using System.Reflection;

namespace KmemNative.Cli.Commands;

/// <summary>
/// The study scenarios shipped inside kmem (src/KmemNative.Cli/Scripts/*.kmem, embedded): `kmem demo` runs them in
/// name order after the tour, and `kmem run --study NAME` style tooling and the tests read them from here.
/// </summary>
internal static class StudyScripts
{
    /// <summary>Every embedded script as (file name, text), ordered by name.</summary>
    public static IEnumerable<(string Name, string Text)> All()
    {
        var asm = typeof(StudyScripts).Assembly;
        foreach (var res in asm.GetManifestResourceNames().Where(n => n.StartsWith("Scripts/", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            using var stream = asm.GetManifestResourceStream(res)!;
            using var reader = new StreamReader(stream);
            yield return (res["Scripts/".Length..], reader.ReadToEnd());
        }
    }

    /// <summary>One script by file name, or null.</summary>
    public static string? Get(string name) => All().Where(s => s.Name == name).Select(s => s.Text).FirstOrDefault();
}
