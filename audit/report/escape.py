"""Escaping of untrusted strings for Markdown, HTML, Mermaid and XML.

Every string that comes from an EDD, a metrics file, a branch name, an error
message or an API response goes through one of these functions before it is
written into a report. They must never let through raw HTML, a clickable link
or image, an @mention, an issue/MR reference, emphasis, a table pipe or a line
break. Both GitHub/GitLab Markdown and the `markdown` package (used for the
HTML report) must read the result as plain text.
"""

from __future__ import annotations

import html
import re

# U+2060 WORD JOINER: invisible, but it splits "@name", "#12", "https://" and
# "www." so that no renderer's autolinker or mention filter sees the pattern.
# Entities would not do: GitHub resolves them before it looks for mentions.
WORD_JOINER = "\u2060"

# Characters with Markdown meaning (emphasis, code, links, images, tables,
# headings, raw HTML, entities, math, strikethrough, GitLab references).
# Numeric character references render as the literal character in every
# CommonMark renderer and in Python-Markdown, and are never parsed as syntax.
_MD_SPECIAL = set("\\`*_{}[]<>#!|~&$^@")

# Line breaks, other control characters, and bidi/invisible controls that can
# reorder or hide text ("Trojan Source").
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]"
)
_NEWLINES = re.compile("\r\n|[\r\n\t\x0b\x0c\x85\u2028\u2029]")

# Patterns that a platform would turn into a link or notification.
_REFERENCE_PREFIX = re.compile(r"(?i)(@|#|!|&|%|~|\$|\^|\bgh-|\bhttps?|\bftp|\bwww|\bmailto)")

# Characters that are safe verbatim inside a Markdown code span in a table cell.
_CODE_SAFE = re.compile(r"[A-Za-z0-9._:/+=,-]{1,200}")

_BLOCK_START = re.compile(r"^([0-9]{0,9})([-+.)])(?=\s|$)")

DEFAULT_LIMIT = 300


def clean_text(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """One line of plain text: no control or bidi characters, bounded length."""
    text = value if isinstance(value, str) else str(value)
    text = _NEWLINES.sub(" ", text)
    text = _CONTROL.sub("\ufffd", text)
    if limit and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def _break_references(text: str) -> str:
    # The joiner goes after the trigger so "@x" / "#1" / "gh-1" / "https:" / "www."
    # are no longer recognised; the visible text is unchanged.
    return _REFERENCE_PREFIX.sub(lambda m: m.group(0) + WORD_JOINER, text)


def md_text(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """Untrusted text as inert Markdown (safe in paragraphs, lists and table cells)."""
    text = _break_references(clean_text(value, limit))
    out = []
    for char in text:
        out.append(f"&#{ord(char)};" if char in _MD_SPECIAL else char)
    # Leading/trailing spaces could turn a line into an indented code block or
    # a hard break; table cells and list items never need them.
    escaped = "".join(out).strip()
    # At the start of a list item "- ", "+ " or "1. " would open a nested list.
    escaped = _BLOCK_START.sub(lambda m: m.group(1) + f"&#{ord(m.group(2))};", escaped, count=1)
    # "---" or "- - -" alone is a thematic break: a leading "-" never starts syntax as an entity.
    if escaped.startswith("-"):
        escaped = "&#45;" + escaped[1:]
    return escaped or "&#8203;"


def md_code(value: object, limit: int = 200) -> str:
    """Identifiers (hashes, SHAs, arm names) as a code span when that is safe.

    A code span shows its content verbatim, so entities cannot be used inside
    it; only strings of a harmless alphabet are put in one, anything else falls
    back to escaped plain text.
    """
    text = value if isinstance(value, str) else str(value)
    if _CODE_SAFE.fullmatch(text) and len(text) <= limit and not _looks_like_link(text):
        return f"`{text}`"
    return md_text(text, limit)


def _looks_like_link(text: str) -> bool:
    return bool(re.search(r"(?i)(://|^www\.|^mailto:)", text))


def html_text(value: object, limit: int = 0) -> str:
    """Untrusted text for an HTML text node or a quoted attribute."""
    return html.escape(clean_text(value, limit), quote=True)


def mermaid_label(value: object, limit: int = 40) -> str:
    """A label inside a double-quoted Mermaid string.

    Mermaid interprets entity codes (#quot;) and some HTML in labels, so only a
    small alphabet survives; everything else becomes '_'.
    """
    text = clean_text(value, limit)
    return re.sub(r"[^A-Za-z0-9 ._-]", "_", text).strip() or "_"


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(value: object, limit: int = 0) -> str:
    """Text ElementTree can serialise as valid XML 1.0 (it escapes, but keeps illegal chars)."""
    text = value if isinstance(value, str) else str(value)
    text = _XML_ILLEGAL.sub("\ufffd", text)
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def marker_key(value: object) -> str:
    """A sticky-comment key: a short token of a fixed alphabet."""
    text = re.sub(r"[^A-Za-z0-9._-]", "-", str(value))[:64].strip("-")
    return text or "default"
