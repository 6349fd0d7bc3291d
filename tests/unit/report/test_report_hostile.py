"""Hostile strings (tests/corpus/hostile) through every untrusted field of every report format.

Markdown is checked by rendering it to HTML (the `markdown` package, which the
HTML report uses, and markdown-it-py's CommonMark parser, which reads it the
way GitHub and GitLab do) and inspecting the element tree; XML and JSON are
parsed. Substring checks alone would miss markup that only parsing reveals.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import markdown
import pytest
from markdown_it import MarkdownIt
from report_factory import CHECKPOINT, build, gate_document

from audit.documents.gate_result import GateResult
from audit.report import MarkdownOptions, ReportInputs, render, render_markdown
from audit.report.inputs import validate
from audit.report.marker import find_marker
from audit.report.verdict import Verdict
from audit.report.verdict import gate_from_document as parse_gate

CORPUS = json.loads(
    (Path(__file__).resolve().parents[2] / "corpus" / "hostile" / "strings.json").read_text()
)
MLFLOW_BASE = "http://127.0.0.1:5000"
ALLOWED_TAGS = {
    "h2", "h3", "h4", "p", "strong", "em", "table", "thead", "tbody", "tr", "th", "td",
    "code", "pre", "details", "summary", "ul", "li", "sub", "a", "blockquote", "br", "hr",
}  # fmt: skip
# A mention, issue/MR reference or autolink trigger, not split by a word joiner.
TRIGGERS = re.compile(
    r"(?<![\w\u2060])@[A-Za-z0-9]|#[0-9]|(?i:gh-[0-9])|![0-9]|![\[]|(?i:https?://)|(?i:www\.)"
    r"|~[a-z]|%[a-z]|&[0-9]|\$[0-9]"
)


class Tree(HTMLParser):
    """Tags, attributes, comments and text outside links/code of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.comments: list[str] = []
        self.text: list[str] = []
        self._skip = 0
        self._open: list[str] = []
        self.nested_blocks: list[str] = []  # a list, quote or heading opened inside a list item

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in ("ul", "ol", "blockquote", "h1", "h2", "h3", "h4", "pre") and "li" in self._open:
            self.nested_blocks.append(tag)
        if tag not in ("br", "hr"):
            self._open.append(tag)
        self.attributes += [(tag, name, value) for name, value in attrs]
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href") or "")
        if tag in ("a", "code", "pre"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]
        if tag in ("a", "code", "pre"):
            self._skip -= 1

    def handle_comment(self, data):
        self.comments.append(data)

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def parse(html: str) -> Tree:
    tree = Tree()
    tree.feed(html)
    tree.close()
    return tree


def hostile_inputs(value: str) -> ReportInputs:
    analysis, results = build(
        components=[value, "safe"],
        primary=value or "p",
        reason=value,
        branch=value,
        principal=value,
        reference=value + " ref",
    )
    # Metric names must differ; the secondary stays benign when the primary is hostile.
    analysis["decision"]["reasons"].append(value)
    analysis["decision"]["summary"] = f"failed because {value}"
    analysis["attrition"].append({"arm": value, "seed": 1, "reason": value})
    results["edd"]["document"]["title"] = value
    results["provenance"]["data"] = {value: value}
    results["provenance"]["environment"]["platform"] = value
    results["trials"][1]["arm"] = value
    results["trials"][1]["trial_id"] = value
    results["trials"][1]["cached_from"] = value
    results["trials"][1]["foreign_runs"] = {value: [value]}
    results["provenance"]["data_pins"] = {
        "git_lfs": [
            {
                "path": value,
                "commit": value,
                "digest": value,
                "objects": [
                    {"path": value, "oid": value, "size": 1, "canonical": False, "matches": False}
                ],
            }
        ],
        "lakefs": [
            {"uri": value, "ref_kind": "branch", "commit_id": value, "manifest_sha256": value}
        ],
    }
    results["approvals"][0]["reason"] = value
    results["approvals"][0]["key_fingerprint"] = value
    validate(analysis, "analysis", "analysis")
    validate(results, "results", "results")
    checkpoint = dict(CHECKPOINT, origin=value)
    return ReportInputs(analysis, results, checkpoint)


def hostile_gate(inputs: ReportInputs, value: str) -> GateResult:
    document = gate_document(inputs.analysis, {"provenance": value, "claims": value})
    return parse_gate(document, "gate.json")


def benign_hrefs() -> set[str]:
    text = render(hostile_inputs("benign"), "md")
    return set(parse(MarkdownIt("commonmark").enable("table").render(text)).hrefs)


def check_tree(tree: Tree, allowed_hrefs: set[str], name: str) -> None:
    unexpected = set(tree.tags) - ALLOWED_TAGS
    assert not unexpected, f"{name}: raw HTML survived: {unexpected}"
    assert not tree.nested_blocks, f"{name}: block syntax inside a list item: {tree.nested_blocks}"
    assert all(h in allowed_hrefs for h in tree.hrefs), f"{name}: foreign link {tree.hrefs}"
    assert not [a for a in tree.attributes if a[1].startswith("on") or a[1] in ("src", "style")]
    markers = [c for c in tree.comments if "mlaudit:report" in c]
    assert markers == [" mlaudit:report key=toy-study "], f"{name}: marker forged {markers}"
    text = "".join(tree.text)
    found = TRIGGERS.findall(text)
    assert not found, f"{name}: mention/reference/link trigger in text: {found}"


@pytest.fixture(scope="module")
def allowed_hrefs() -> set[str]:
    hrefs = benign_hrefs()
    assert hrefs
    assert all(h.startswith(MLFLOW_BASE + "/") or h == MLFLOW_BASE for h in hrefs)
    return hrefs


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_markdown_stays_inert(case, allowed_hrefs):
    inputs = hostile_inputs(case["value"])
    # As GitHub/GitLab read it (CommonMark + tables), in full and cut to a comment's size.
    # The gate's evidence quotes the study's own strings: it is untrusted text too.
    gate = hostile_gate(inputs, case["value"])
    for budget in (None, "github-comment"):
        text = render(inputs, "md", budget=budget, gate=gate)
        assert find_marker(text).key == "toy-study"
        commonmark = MarkdownIt("commonmark").enable("table").render(text)
        check_tree(parse(commonmark), allowed_hrefs, f"{case['name']} commonmark")
    # As the HTML report reads it (Python-Markdown; <details markdown="1">).
    text = render_markdown(inputs, MarkdownOptions(html_mode=True), Verdict(gate))
    html = markdown.markdown(text, extensions=["tables", "md_in_html"])
    check_tree(parse(html), allowed_hrefs, f"{case['name']} python-markdown")


NUMBER = r"[-+0-9.e]+|n/a"


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_chart_labels_are_plain(case):
    text = render(hostile_inputs(case["value"]), "md")
    blocks = re.findall(r"```text\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        *rows, axis = block.rstrip("\n").split("\n")
        for line in rows:
            assert re.fullmatch(
                rf"[A-Za-z0-9._+?…-]+ +[ │├┤─┼●]+  ({NUMBER}) \[({NUMBER}), ({NUMBER})\]", line
            ), line
        assert re.fullmatch(rf" +[ 0]*   \(axis ({NUMBER}|0) … ({NUMBER})\)", axis), axis


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_junit_and_json_parse(case):
    inputs = hostile_inputs(case["value"])
    root = ET.fromstring(render(inputs, "junit").encode())
    assert root.tag == "testsuites"
    assert [c.get("name") for c in root.findall(".//testcase")] == ["not-gated"]
    summary = json.loads(render(inputs, "json"))
    assert case["value"] in summary["statistics"]["reasons"]  # JSON keeps data as data


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in CORPUS
        if c["name"]
        in (
            "script-tag",
            "svg-onload",
            "md-link",
            "marker-forgery",
            "mermaid-breakout",
            "long",
            "nul-and-controls",
        )
    ],
    ids=lambda c: c["name"],
)
def test_html_page_is_inert(case):
    page = render(hostile_inputs(case["value"]), "html")
    tree = parse(page)
    assert "script" not in tree.tags
    assert "foreignobject" not in tree.tags
    assert "iframe" not in tree.tags
    assert "img" not in tree.tags
    assert not [a for a in tree.attributes if a[1].startswith("on")]
    links = [v for _, n, v in tree.attributes if n in ("href", "src", "xlink:href") and v]
    assert all(v.startswith((MLFLOW_BASE, "#")) for v in links), links
