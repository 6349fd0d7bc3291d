"""The standalone HTML report for the audit bundle: opens offline, loads nothing.

The page is the Markdown report converted by the `markdown` package, a small
inline stylesheet and the forest plots as inline SVG. A Content-Security-Policy
forbids every external load, so even a bug elsewhere cannot make it phone home.
"""

from __future__ import annotations

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
       padding: 1px 4px; border-radius: 4px; word-break: break-all; }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: 600; }
blockquote { border-left: 4px solid #0969da; margin: 0; padding: 0 12px; color: #57606a; }
figure.plot svg { max-width: 100%; height: auto; }
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render_html(inputs: ReportInputs, verdict: Verdict | None = None) -> str:
    """The full report (no size budget) as one self-contained HTML page.

    Its headline and title show `verdict` (the gate's result), or "not gated".
    """
    import markdown

    verdict = verdict or Verdict(None)
    options = MarkdownOptions(html_mode=True)
    text = render_markdown(inputs, options, verdict)
    body = markdown.markdown(text, extensions=["tables"], output_format="html")
    for index, block in enumerate(options.stash):
        body = body.replace(stash_placeholder(index), block, 1)
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
