"""The standalone HTML report for the audit bundle: opens offline, loads nothing.

The page is the Markdown report converted by the `markdown` package, a small
inline stylesheet and the forest plots as inline SVG. A Content-Security-Policy
forbids every external load, so even a bug elsewhere cannot make it phone home.
"""

from __future__ import annotations

import re

from audit import __version__
from audit.report.escape import html_text
from audit.report.inputs import ReportInputs
from audit.report.markdown import (
    MarkdownOptions,
    chart_placeholder,
    comparisons_for,
    render_markdown,
    stash_placeholder,
)
from audit.report.markdown_html import markdown_to_html
from audit.report.plots import forest_svg, strip_comments
from audit.report.verdict import Verdict

STYLESHEET = """
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       margin: 0; background: #f6f8fa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px; background: #fff; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: #eff1f3;
       padding: 1px 4px; border-radius: 4px; }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: 600; }
blockquote { border-left: 4px solid #0969da; margin: 0; padding: 0 12px; color: #57606a; }
figure.plot svg { max-width: 100%; height: auto; }
/* Phones (390 px): a wide table scrolls inside its own box, never the page; names
   break only where <wbr> marks a separator, long digests anywhere. */
table { display: block; max-width: 100%; overflow-x: auto; }
td code, th code { overflow-wrap: normal; word-break: normal; }
h2, h3, h4 { overflow-wrap: break-word; }
p code, li code, summary code { overflow-wrap: anywhere; }
pre { max-width: 100%; overflow-x: auto; }
figure.plot { margin: 8px 0; max-width: 100%; overflow-x: auto; }
@media (max-width: 600px) { main { padding: 12px; } }
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


_NAMED = re.compile(r"<(code|h[234])>(.*?)</\1>", flags=re.S)
_PIECES = re.compile(r"(<[^>]*>|&#?\w+;)")
_SEPARATOR = re.compile(r"([-_./:+])")
_SEPARATOR_ENTITIES = ("&#95;", "&#45;", "&#46;", "&#47;", "&#43;")


def _after_separators(fragment: str) -> str:
    """Add <wbr> after each separator in the text of `fragment` (not in tags or entities)."""
    out = []
    for piece in _PIECES.split(fragment):
        if piece.startswith("<"):
            out.append(piece)
        elif piece.startswith("&"):
            out.append(piece + ("<wbr>" if piece in _SEPARATOR_ENTITIES else ""))
        else:
            out.append(_SEPARATOR.sub(r"\1<wbr>", piece))
    return "".join(out)


def break_names_at_separators(body: str) -> str:
    """`no-velocity` may wrap after `-`, never inside `velocity` (code and headings)."""
    return _NAMED.sub(
        lambda m: f"<{m.group(1)}>{_after_separators(m.group(2))}</{m.group(1)}>", body
    )


def render_html(inputs: ReportInputs, verdict: Verdict | None = None) -> str:
    """The full report (no size budget) as one self-contained HTML page.

    Its headline and title show `verdict` (the gate's result), or "not gated".
    """
    verdict = verdict or Verdict(None)
    options = MarkdownOptions(html_mode=True)
    text = render_markdown(inputs, options, verdict)
    body = markdown_to_html(text, output_format="html")
    for index, block in enumerate(options.stash):
        body = body.replace(stash_placeholder(index), block, 1)
    body = break_names_at_separators(body)
    for index, (metric, rows) in enumerate(comparisons_for(inputs.analysis, True).items()):
        svg = forest_svg(metric, rows)
        figure = f'<figure class="plot">{strip_comments(svg)}</figure>' if svg else ""
        body = body.replace(chart_placeholder(index), figure)
    edd = inputs.analysis["edd"]
    title = html_text(f"mlaudit {verdict.word()}: {edd.get('id')} v{edd.get('version')}", 200)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="mlaudit {html_text(__version__)}">\n'
        f"<title>{title}</title>\n<style>{STYLESHEET}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
