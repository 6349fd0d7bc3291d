"""Markdown text -> HTML through the `markdown` package with its tables extension.

The extension is passed as an instance, not by the name "tables": a name makes
`markdown` scan every installed distribution's entry points (importlib.metadata)
to find it, which costs more than converting a whole report.
"""

from __future__ import annotations

from typing import Literal


def markdown_to_html(text: str, output_format: Literal["html", "xhtml"] = "xhtml") -> str:
    """`markdown.markdown(text, extensions=["tables"], output_format=...)`, same bytes."""
    import markdown
    from markdown.extensions.tables import TableExtension

    return markdown.markdown(text, extensions=[TableExtension()], output_format=output_format)
