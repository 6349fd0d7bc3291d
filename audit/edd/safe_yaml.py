"""A hostile-input YAML reader that yields plain JSON values, never Python objects.

Rules (documented in docs/edd.md): YAML 1.2 core scalars only. Booleans are
true/True/TRUE/false/False/FALSE; yes/no/on/off and dates stay strings; ints are
decimal and within +-(2^53 - 1); floats are finite; null is null/Null/NULL/~ or
empty. Refused: duplicate keys, anchors and aliases, any explicit tag, non-string
keys, files over 1 MiB and nesting deeper than 64. It must never construct
arbitrary objects or follow references, so it composes nodes itself and converts
them by hand instead of using a yaml Constructor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from audit.errors import ValidationFailed, escape_pointer_token, unreadable_input

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_SAFE_INT = 2**53 - 1
MAX_PROBLEMS = 20
# 2^53 - 1 has 16 digits: anything longer is refused before int() sees it, so a
# 5,000-digit literal never reaches CPython's int/str conversion limit (4,300).
MAX_INT_DIGITS = len(str(MAX_SAFE_INT))
SHOWN_CHARS = 40

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OTHER_INT = re.compile(r"^[-+]?0[oxOX][0-9a-fA-F_]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SPECIAL_FLOAT = re.compile(r"^[-+]?\.(?:inf|Inf|INF|nan|NaN|NAN)$")


class _Refused(Exception):
    """Raised inside composition, where no pointer is known yet."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _PlainResolver(BaseResolver):
    # No implicit resolvers at all: every scalar is composed as a string and
    # typed later by `_scalar`, which applies the YAML 1.2 core rules.
    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012


class _AliasNode(ScalarNode):
    """Stands where an alias was, so it is reported in place and never expanded."""


class _Loader(Reader, Scanner, Parser, Composer, _PlainResolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _PlainResolver.__init__(self)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self.get_event()  # type: ignore[no-untyped-call]
            start: Any = event.start_mark
            return _AliasNode("", event.anchor, start, start)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark.line + 1)
            node: Node | None = super().compose_node(parent, index)
            assert node is not None
            # Remember what the converter must refuse, with the pointer it knows.
            node.refusal = _refusal(event)  # type: ignore[attr-defined]
            return node
        finally:
            self._depth -= 1


def _shown(text: str) -> str:
    """A scalar as it appears in a message: repr'd and cut, never 5,000 digits long."""
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return f"{text[:SHOWN_CHARS]!r}... ({len(text)} characters)"


def _refusal(event: Any) -> str:
    if getattr(event, "anchor", None) is not None:
        return f"anchors are not allowed (&{event.anchor})"
    if getattr(event, "tag", None) is not None:
        return f"tags are not allowed (found {event.tag!r})"
    return ""


@dataclass
class Parsed:
    """A YAML document as JSON values plus the line (1-based) of every pointer."""

    value: Any
    lines: dict[str, int] = field(default_factory=dict)


def _is_refused(node: Node) -> bool:
    return isinstance(node, _AliasNode) or bool(getattr(node, "refusal", ""))


@dataclass
class _Converter:
    problems: list[tuple[str, str]] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)

    def refuse(self, pointer: str, message: str, node: Node) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append((pointer, f"{message} (line {node.start_mark.line + 1})"))

    def convert(self, node: Node, pointer: str) -> Any:
        self.lines[pointer] = node.start_mark.line + 1
        if isinstance(node, _AliasNode):
            self.refuse(pointer, f"aliases are not allowed (*{node.value})", node)
            return None
        refusal = getattr(node, "refusal", "")
        if refusal:
            self.refuse(pointer, refusal, node)
            return None
        if isinstance(node, MappingNode):
            return self._mapping(node, pointer)
        if isinstance(node, SequenceNode):
            return [self.convert(item, f"{pointer}/{i}") for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self._scalar(node, pointer)

    def _mapping(self, node: MappingNode, pointer: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or _is_refused(key_node):
                self.refuse(pointer, "mapping keys must be plain strings", key_node)
                continue
            key = self._scalar(key_node, pointer)
            if not isinstance(key, str):
                self.refuse(pointer, f"key {key_node.value!r} is not a string; quote it", key_node)
                continue
            child = f"{pointer}/{escape_pointer_token(key)}"
            if key in result:
                first = self.lines.get(child, 0)
                self.refuse(child, f"duplicate key {key!r} (first at line {first})", key_node)
                continue
            result[key] = self.convert(value_node, child)
        return result

    def _scalar(self, node: ScalarNode, pointer: str) -> Any:
        text: str = node.value
        if _SURROGATE.search(text):
            text = self._join_surrogates(text, node, pointer)
        if node.style is not None:  # quoted or block scalars are always strings
            return text
        if _NULL.match(text):
            return None
        if text in _BOOL:
            return _BOOL[text]
        if _INT.match(text):
            return self._integer(text, node, pointer)
        if _OTHER_INT.match(text):
            self.refuse(pointer, f"{_shown(text)}: only decimal integers are allowed", node)
            return text
        if _SPECIAL_FLOAT.match(text):
            self.refuse(pointer, f"{_shown(text)}: NaN and infinity are not allowed", node)
            return text
        if _FLOAT.match(text):
            number = float(text)
            if number in (float("inf"), float("-inf")):
                self.refuse(pointer, f"{_shown(text)}: number is out of range", node)
            return number
        return text

    def _join_surrogates(self, text: str, node: ScalarNode, pointer: str) -> str:
        # "\ud83d\ude00" escapes (as json.dumps writes them) mean one character;
        # a lone surrogate cannot be encoded as UTF-8, so it cannot be signed.
        try:
            return text.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeDecodeError:
            self.refuse(pointer, "string holds an unpaired surrogate escape", node)
            return text.encode("utf-8", "replace").decode("utf-8")

    def _integer(self, text: str, node: ScalarNode, pointer: str) -> Any:
        digits = text.lstrip("+-")
        if len(digits) > 1 and digits.startswith("0"):
            # YAML 1.1 reads 010 as octal 8, YAML 1.2 as 10: refuse the ambiguity.
            self.refuse(pointer, f"{_shown(text)}: leading zeros are ambiguous; quote it", node)
            return text
        if len(digits) > MAX_INT_DIGITS or abs(int(text)) > MAX_SAFE_INT:
            shown = (
                text
                if len(text) <= SHOWN_CHARS
                else f"{text[:SHOWN_CHARS]}... ({len(digits)} digits)"
            )
            self.refuse(pointer, f"integer {shown} is beyond 2^53 - 1", node)
            return text
        return int(text)


def _compose(text: str, file: str) -> Node | None:
    try:
        # The Reader checks every character when it is built (NUL, ESC and other
        # control bytes are refused there), so building it belongs inside the try.
        loader = _Loader(text)
    except yaml.reader.ReaderError as error:
        raise ValidationFailed(file, [("", _reader_problem(error, text))]) from None
    try:
        node: Node | None = loader.get_single_node()
        return node
    except yaml.reader.ReaderError as error:
        raise ValidationFailed(file, [("", _reader_problem(error, text))]) from None
    except _Refused as refused:
        raise ValidationFailed(file, [("", f"{refused.message} (line {refused.line})")]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        parts = [part for part in (error.context, error.problem) if part]
        problem = ": ".join(parts) or "syntax error"
        raise ValidationFailed(file, [("", f"not valid YAML: {problem}{where}")]) from None
    except yaml.YAMLError as error:
        raise ValidationFailed(file, [("", f"not valid YAML: {error}")]) from None
    finally:
        loader.dispose()


def _reader_problem(error: yaml.reader.ReaderError, text: str) -> str:
    position = int(error.position)
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    character = error.character
    code = ord(character) if isinstance(character, str) else int(character)
    return f"control character U+{code:04X} is not allowed (line {line}, column {column})"


def parse_yaml_bytes(data: bytes, file: str) -> Parsed:
    """Parse untrusted YAML bytes; raise ValidationFailed listing every problem."""
    if len(data) > MAX_BYTES:
        raise ValidationFailed(file, [("", f"file is larger than {MAX_BYTES} bytes")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValidationFailed(file, [("", f"not UTF-8 (byte {error.start})")]) from None
    node = _compose(text, file)
    if node is None:
        raise ValidationFailed(file, [("", "the document is empty")])
    converter = _Converter()
    value = converter.convert(node, "")
    if converter.problems:
        raise ValidationFailed(file, converter.problems)
    return Parsed(value=value, lines=converter.lines)


def read_limited(path: Path, limit: int = MAX_BYTES) -> bytes:
    """Read at most limit + 1 bytes, so a huge file is refused without loading it."""
    try:
        with path.open("rb") as handle:
            return handle.read(limit + 1)
    except OSError as error:
        raise unreadable_input(error, str(path)) from None


def parse_yaml_file(path: Path, display: str | None = None) -> Parsed:
    return parse_yaml_bytes(read_limited(path), display or str(path))
