"""md_text is lossless and inert for any string: rendered, it is one paragraph of the same text."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from audit.report.escape import WORD_JOINER, clean_text, md_text

PARSER = MarkdownIt("commonmark").enable("table")


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text += data


def rendered(markdown_text: str) -> Collect:
    collect = Collect()
    collect.feed(PARSER.render(markdown_text))
    return collect


texts = st.lists(
    st.one_of(
        st.sampled_from([*list("\\`*_{}[]()<>#!|~&$^@+-.:=%'\"/ \n\t\r;"), "http://", "www."]),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_paragraph_round_trip(value):
    out = rendered(md_text(value, limit=0))
    assert out.tags == ["p"]
    expected = clean_text(value, limit=0).strip() or "\u200b"
    assert out.text.strip("\n").replace(WORD_JOINER, "") == expected.replace(WORD_JOINER, "")


@settings(max_examples=300, deadline=None)
@given(texts, texts)
def test_table_cells_round_trip(left, right):
    table = f"| a | b |\n|---|---|\n| {md_text(left, limit=0)} | {md_text(right, limit=0)} |\n"
    out = rendered(table)
    assert out.tags.count("td") == 2
    assert set(out.tags) <= {"table", "thead", "tbody", "tr", "th", "td"}
