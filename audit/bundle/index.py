"""index.html: the page an auditor opens first, linking every member of the bundle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem}"
    ".pass{color:#116611}.fail{color:#aa1111}code{font-size:.9em}"
)


def render_index(edd: Mapping[str, Any], gate: Mapping[str, Any], members: Sequence[str]) -> bytes:
    passed = bool(gate.get("passed"))
    verdict = "PASSED" if passed else "FAILED"
    rules = "".join(
        f"<tr><td>{escape(str(r.get('rule')))}</td>"
        f"<td class={'pass' if r.get('passed') else 'fail'}>"
        f"{'pass' if r.get('passed') else 'fail'}</td>"
        f"<td>{escape(str(r.get('evidence')))}</td></tr>"
        for r in gate.get("rules", [])
    )
    files = "".join(
        f'<li><a href="{escape(quote(name))}"><code>{escape(name)}</code></a></li>'
        for name in members
    )
    page = (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>mlaudit bundle: {escape(str(edd.get('id')))}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Audit bundle for {escape(str(edd.get('id')))} v{escape(str(edd.get('version')))}</h1>"
        f"<p>Gate <strong class={'pass' if passed else 'fail'}>{verdict}</strong>. "
        f"EDD digest <code>{escape(str(edd.get('digest')))}</code>.</p>"
        "<p>Check everything offline with <code>mlaudit bundle verify BUNDLE.tar.gz</code>.</p>"
        f"<h2>Gate rules</h2><table><tr><th>rule</th><th>result</th><th>evidence</th></tr>{rules}"
        f"</table><h2>Contents</h2><ul>{files}</ul></body></html>\n"
    )
    return page.encode("utf-8")
