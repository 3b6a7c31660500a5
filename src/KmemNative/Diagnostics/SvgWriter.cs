using System.Globalization;
using System.Text;

namespace KmemNative.Diagnostics;

/// <summary>
/// A minimal SVG 1.1 writer for the memory pictures: elements with attributes, escaped text, nothing else. Hand
/// written so the library needs no drawing dependency; the output is plain XML any viewer (and System.Xml) reads.
/// </summary>
internal sealed class SvgWriter
{
    private readonly StringBuilder _sb = new();
    private int _depth;

    public SvgWriter(double width, double height, string title)
    {
        _sb.Append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        _sb.Append(F($"<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{width:0.##}\" height=\"{height:0.##}\" viewBox=\"0 0 {width:0.##} {height:0.##}\" font-family=\"DejaVu Sans, Verdana, sans-serif\">\n"));
        _depth = 1;
        Element("title", title);
        Rect(0, 0, width, height, "#ffffff", ("class", "background"));
    }

    internal static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static string N(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>XML-escapes text and attribute values.</summary>
    public static string Escape(string s)
    {
        if (s.AsSpan().IndexOfAny("<>&\"'") < 0)
            return s;
        var sb = new StringBuilder(s.Length + 16);
        foreach (char c in s)
        {
            sb.Append(c switch
            {
                '<' => "&lt;",
                '>' => "&gt;",
                '&' => "&amp;",
                '"' => "&quot;",
                '\'' => "&apos;",
                _ => c.ToString(),
            });
        }
        return sb.ToString();
    }

    private void Indent() => _sb.Append(' ', _depth * 2);

    private void Attrs((string Name, string Value)[] attrs)
    {
        foreach (var (name, value) in attrs)
            _sb.Append(' ').Append(name).Append("=\"").Append(Escape(value)).Append('"');
    }

    public void Open(string element, params (string Name, string Value)[] attrs)
    {
        Indent();
        _sb.Append('<').Append(element);
        Attrs(attrs);
        _sb.Append(">\n");
        _depth++;
    }

    public void Close(string element)
    {
        _depth--;
        Indent();
        _sb.Append("</").Append(element).Append(">\n");
    }

    public void Element(string element, string? text, params (string Name, string Value)[] attrs)
    {
        Indent();
        _sb.Append('<').Append(element);
        Attrs(attrs);
        if (text is null)
        {
            _sb.Append("/>\n");
            return;
        }
        _sb.Append('>').Append(Escape(text)).Append("</").Append(element).Append(">\n");
    }

    public void Rect(double x, double y, double w, double h, string fill, params (string Name, string Value)[] attrs) =>
        Element("rect", null, [("x", N(x)), ("y", N(y)), ("width", N(w)), ("height", N(h)), ("fill", fill), .. attrs]);

    /// <summary>A rectangle with a tooltip (a &lt;title&gt; child).</summary>
    public void RectWithTitle(double x, double y, double w, double h, string fill, string title, params (string Name, string Value)[] attrs)
    {
        Open("rect", [("x", N(x)), ("y", N(y)), ("width", N(w)), ("height", N(h)), ("fill", fill), .. attrs]);
        Element("title", title);
        Close("rect");
    }

    public void Text(double x, double y, string text, double size = 12, string anchor = "start", string? cls = null, string weight = "normal", string fill = "#222222")
    {
        var attrs = new List<(string, string)> { ("x", N(x)), ("y", N(y)), ("font-size", N(size)), ("fill", fill) };
        if (anchor != "start")
            attrs.Add(("text-anchor", anchor));
        if (weight != "normal")
            attrs.Add(("font-weight", weight));
        if (cls is not null)
            attrs.Add(("class", cls));
        Element("text", text, [.. attrs]);
    }

    public void Line(double x1, double y1, double x2, double y2, string stroke, double width = 1, string? dash = null, string? cls = null)
    {
        var attrs = new List<(string, string)> { ("x1", N(x1)), ("y1", N(y1)), ("x2", N(x2)), ("y2", N(y2)), ("stroke", stroke), ("stroke-width", N(width)) };
        if (dash is not null)
            attrs.Add(("stroke-dasharray", dash));
        if (cls is not null)
            attrs.Add(("class", cls));
        Element("line", null, [.. attrs]);
    }

    public void Path(string d, string stroke, double width = 1, string fill = "none", string? cls = null)
    {
        var attrs = new List<(string, string)> { ("d", d), ("stroke", stroke), ("stroke-width", N(width)), ("fill", fill) };
        if (cls is not null)
            attrs.Add(("class", cls));
        Element("path", null, [.. attrs]);
    }

    public void Circle(double cx, double cy, double r, string fill, params (string Name, string Value)[] attrs) =>
        Element("circle", null, [("cx", N(cx)), ("cy", N(cy)), ("r", N(r)), ("fill", fill), .. attrs]);

    public override string ToString() => _sb + "</svg>\n";
}
