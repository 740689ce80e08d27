"""Read manifest YAML safely (size, depth and alias caps, UTF-8/16/32) and keep each scalar's source text."""
from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

import yaml

from cvatflow.errors import CvatflowError, TemplateError
from cvatflow.reading import read_limited

MAX_BYTES = 8 * 1024 * 1024  # Kubernetes refuses objects over ~1.5 MiB; 8 MiB leaves room for Lists
MAX_DEPTH = 200  # Argo manifests nest ~20 deep; 5,000 brackets is an attack, not a workflow
MAX_ALIAS_NODES = 100_000  # values reached through `*alias` (a "billion laughs" file reaches billions)

# How plain (unquoted) scalars are typed: YAML 1.1 as Kubernetes' go-yaml reads it, without the sexagesimal
# numbers (`12:30` -> 750) and timestamps PyYAML adds; `1e3` is a float, as in YAML 1.2 and go-yaml.
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}
_FALSE = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9_]*|0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+)$")
_FLOAT = re.compile(r"^[-+]?(?:(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF))$"
                    r"|^\.(?:nan|NaN|NAN)$")
# Words other YAML readers (go-yaml v2, YAML 1.1) take for booleans: written quoted so no reader changes them.
_AMBIGUOUS = {"y", "Y", "n", "N"}
_NOT_STR_START = frozenset("~nNtTfFyYoO0123456789+-.")  # how every null, bool, int and float begins
_STANDARD_TAGS = {"tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                  "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"}
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's own event parser (used where libyaml is not installed)."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


# libyaml's parser when present (several times faster); both are iterative, so deep nesting cannot overflow them.
_Parser = yaml.cyaml.CParser if yaml.__with_libyaml__ else _PyParser


class SourceDict(dict):
    """A mapping that remembers how each non-string scalar value was written (`010`, `on`, `3.10`)."""

    __slots__ = ("source",)

    def __init__(self) -> None:
        super().__init__()
        self.source: dict[str, str] = {}


class SourceList(list):
    """A sequence that remembers how each non-string scalar item was written."""

    __slots__ = ("source",)

    def __init__(self) -> None:
        super().__init__()
        self.source: dict[int, str] = {}


def source_text(container: Any, key: Any) -> str:
    """The value at `key` as its author wrote it: a number or boolean as its source text, None as "".

    Args: a mapping (str key) or list (int index) from `load_documents`, or any plain dict/list.
    Returns "" when the key is absent; other values (strings, or plain containers' numbers) via `str`.
    """
    try:
        value = container[key]
    except (KeyError, IndexError, TypeError):
        return ""
    if isinstance(value, str):
        return value
    written = getattr(container, "source", {}).get(key)
    if written is not None and value is not None:
        return written
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def plain_type(text: str) -> str:
    """What a plain (unquoted) scalar reads as: "null", "bool", "int", "float" or "str"."""
    if text and text[0] not in _NOT_STR_START:
        return "str"  # most scalars: decided by their first character, no regex needed
    if _NULL.match(text):
        return "null"
    if text in _TRUE or text in _FALSE:
        return "bool"
    if _INT.match(text):
        return "int"
    if _FLOAT.match(text):
        return "float"
    return "str"


def needs_quotes(text: str) -> bool:
    """Whether a string written plain would be read back as something else by any common YAML reader."""
    return text in _AMBIGUOUS or plain_type(text) != "str"


def decode(data: bytes, source: str) -> str:
    """Manifest bytes as text: UTF-8 (with or without BOM), or UTF-16/32 with a BOM.

    Raises TemplateError (one line naming `source`) for anything else or a file over MAX_BYTES.
    """
    if len(data) > MAX_BYTES:
        raise TemplateError(f"{source}: the file is {len(data):,} bytes, over the {MAX_BYTES:,}-byte limit for a "
                            f"manifest; split it into smaller files")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding).lstrip("\ufeff")
            except UnicodeDecodeError as exc:
                raise TemplateError(f"{source}: not valid {encoding.upper()} at byte {exc.start} although it starts "
                                    f"with a {encoding.upper()} byte-order mark; save it as UTF-8") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"{source}: not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x}); save the "
                            f"file as UTF-8 (or UTF-16 with a byte-order mark)") from None


def read_text(path: str | Path) -> str:
    """A manifest file's text (see `decode`); TemplateError when it is missing, a folder or unreadable."""
    path = Path(path)
    data = read_limited(path, MAX_BYTES, TemplateError, "manifest", "give the path of a manifest YAML",
                        "split it into smaller files")
    return decode(data, str(path))


def load_documents(text: str, source: str) -> list[Any]:
    """Every document of a YAML stream as plain data (dict, list, str, int, float, bool, None).

    Mappings and sequences are SourceDict/SourceList, so `source_text` gives any value as written.
    Empty documents are left out (as `kubectl apply` does). Raises TemplateError, one line naming `source`
    and the line, for a syntax error, a recursive or over-used alias, nesting deeper than MAX_DEPTH, a
    non-scalar mapping key, or text over MAX_BYTES.
    """
    if len(text) > MAX_BYTES:
        raise TemplateError(f"{source}: the text is {len(text):,} characters, over the {MAX_BYTES:,} limit for a "
                            f"manifest; split it into smaller files")
    try:
        return _Builder(text, source).documents()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0] or exc.__class__.__name__
        raise TemplateError(f"{source}: not valid YAML{where}: {problem}; fix the syntax and try again") from None


def load_one(text: str, source: str) -> Any:
    """The single document of `text` (None when empty); TemplateError when there are several."""
    documents = load_documents(text, source)
    if len(documents) > 1:
        raise TemplateError(f"{source}: holds {len(documents)} YAML documents; give one manifest per file here "
                            f"(`cvatflow templates validate` takes multi-document files)")
    return documents[0] if documents else None


def kind_of(value: Any) -> str:
    """What a YAML value is, in YAML's words ("a list", "a mapping", ...), for errors: never our class names."""
    if value is None:
        return "nothing (an empty document or null)"
    for kinds, words in (((dict,), "a mapping"), ((list, tuple), "a list"), ((bool,), "a boolean"),
                         ((int, float), "a number"), ((str,), "a string")):
        if isinstance(value, kinds):
            return words
    return f"a {type(value).__name__}"


def plain(value: Any) -> Any:
    """`value` with SourceDict/SourceList turned into dict/list, for code that dumps or compares it (depth is
    capped at MAX_DEPTH when loading, so recursion is bounded)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def load_file(path: str | Path, what: str, fix: str, error: type[CvatflowError] = TemplateError,
              source: str | None = None) -> Any:
    """The single YAML document of the file at `path` (a `what`, e.g. "artifact-repository file"), read with the
    caps above, as plain dicts and lists. Raises `error` (one line naming the file, or `source` for YAML problems) when the file is missing
    (ending in `fix`), too big, not text, not valid YAML or holds several documents.
    """
    path = Path(path)
    name = source or str(path)
    try:
        data = read_limited(path, MAX_BYTES, error, what, fix, "split it into smaller files")
        return plain(load_one(decode(data, name), name))
    except TemplateError as exc:
        if error is TemplateError:
            raise
        raise error(str(exc)) from None


class _Builder:
    """Builds documents from the parser's event stream without recursion, so depth is only what we allow."""

    def __init__(self, text: str, source: str) -> None:
        self.parser = _Parser(text)
        self.source = source
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, nodes in it)
        self.open: set[str] = set()  # anchors whose container is still being built (an alias to one recurses)
        self.alias_nodes = 0

    def fail(self, event: Any, message: str) -> TemplateError:
        mark = event.start_mark
        return TemplateError(f"{self.source}: {message} (line {mark.line + 1}, column {mark.column + 1})")

    def documents(self) -> list[Any]:
        parser = self.parser
        out = []
        try:
            while not parser.check_event(yaml.StreamEndEvent):
                event = parser.get_event()
                if isinstance(event, yaml.DocumentStartEvent):
                    self.anchors.clear()
                    document = self.node(parser.get_event())
                    parser.get_event()  # DocumentEndEvent
                    if document is not None:
                        out.append(document)
        finally:
            dispose = getattr(parser, "dispose", None)
            if dispose:
                dispose()
        return out

    def node(self, event: Any) -> Any:
        """The value that starts with `event`, reading further events until it is complete."""
        # Each frame: [container, nodes so far, anchor, pending key (mappings; _KEY when a key is expected), event]
        stack: list[list[Any]] = []
        while True:
            if isinstance(event, yaml.AliasEvent):
                if event.anchor in self.open:
                    raise self.fail(event, f"alias *{event.anchor} refers to the value that contains it "
                                           f"(a recursive structure cannot be a manifest)")
                if event.anchor not in self.anchors:
                    raise self.fail(event, f"alias *{event.anchor} refers to no anchor &{event.anchor}")
                value, size = self.anchors[event.anchor]
                self.alias_nodes += size
                if self.alias_nodes > MAX_ALIAS_NODES:
                    raise self.fail(event, f"aliases expand to over {MAX_ALIAS_NODES:,} values (an alias bomb?); "
                                           f"write the values out or use fewer aliases")
                done = (value, size, False)  # an alias has no text of its own
            elif isinstance(event, yaml.ScalarEvent):
                value = self.scalar(event)
                if event.anchor:
                    self.anchors[event.anchor] = (value, 1)
                done = (value, 1, not isinstance(value, str))
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if stack and stack[-1][3] is _KEY:
                    raise self.fail(event, "a mapping key must be a plain value, not a list or mapping")
                if len(stack) >= MAX_DEPTH:
                    raise self.fail(event, f"nesting deeper than {MAX_DEPTH} levels; a manifest never needs that")
                container = SourceDict() if isinstance(event, yaml.MappingStartEvent) else SourceList()
                if event.anchor:
                    self.open.add(event.anchor)
                stack.append([container, 1, event.anchor, _KEY if isinstance(container, dict) else None, event])
                event = self.parser.get_event()
                continue
            else:  # MappingEnd / SequenceEnd
                container, size, anchor, _, _start = stack.pop()
                if anchor:
                    self.open.discard(anchor)
                    self.anchors[anchor] = (container, size)
                done = (container, size, False)
            if not stack:
                return done[0]
            self.add(stack[-1], done, event)
            event = self.parser.get_event()

    def add(self, frame: list[Any], done: tuple[Any, int, bool], event: Any) -> None:
        container = frame[0]
        value, size, remember = done
        frame[1] += size
        if isinstance(container, list):
            if remember:
                container.source[len(container)] = event.value
            container.append(value)
        elif frame[3] is _KEY:
            frame[3] = self.key(event, value)
        else:
            key, frame[3] = frame[3], _KEY
            if key is _MERGE:
                self.merge(container, value, event)
                return
            container[key] = value
            container.source.pop(key, None)
            if remember:
                container.source[key] = event.value

    def key(self, event: Any, value: Any) -> Any:
        """A mapping key as a string, the way Kubernetes turns YAML into JSON (`5:` is the key "5")."""
        if isinstance(event, yaml.ScalarEvent):
            if event.value == "<<" and not event.style:
                return _MERGE
            return event.value if (not event.style or isinstance(value, str)) else str(value)
        if isinstance(value, (str, int, float)) or value is None:  # an alias to a scalar
            return source_text({"k": value}, "k") or "null"
        raise self.fail(event, "a mapping key must be a plain value, not a list or mapping")

    def merge(self, container: SourceDict, value: Any, event: Any) -> None:
        """`<<: *defaults` (or a list of them): keys not already set are taken from the merged mappings."""
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(s, dict) for s in sources):
            raise self.fail(event, "`<<` merges mappings only; give an alias to a mapping or a list of them")
        for merged in sources:
            for k, v in merged.items():
                if k not in container:
                    container[k] = v
                    written = getattr(merged, "source", {}).get(k)
                    if written is not None:
                        container.source[k] = written

    def scalar(self, event: Any) -> Any:
        text = event.value
        tag = event.tag
        if tag in (None, "!") and not event.style and event.implicit[0]:
            kind = plain_type(text)
        elif tag in _STANDARD_TAGS:
            kind = tag.rsplit(":", 1)[-1]
        else:
            return text  # quoted, or a tag Kubernetes does not know: the text as written
        try:
            if kind == "null":
                return None if _NULL.match(text) else text
            if kind == "bool":
                if text in _TRUE or text in _FALSE:
                    return text in _TRUE
                raise ValueError(text)
            if kind == "int":
                return _to_int(text)
            if kind == "float":
                return float(text.replace("_", "").replace(".inf", "inf").replace(".Inf", "inf")
                             .replace(".INF", "inf").replace(".nan", "nan").replace(".NaN", "nan")
                             .replace(".NAN", "nan"))
        except ValueError:
            if not event.style and tag in (None, "!"):
                return text  # e.g. an integer too long for Python to convert: keep the text
            raise self.fail(event, f"{text!r} is not a valid !!{kind}") from None
        return text


_KEY = object()  # marks "a key is expected next" in a mapping frame
_MERGE = object()  # the `<<` merge key


def _to_int(text: str) -> int:
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    if digits.startswith(("0x", "0X", "0b", "0o")):
        return sign * int(digits, 0)
    if len(digits) > 1 and digits.startswith("0"):
        return sign * int(digits[1:], 8)
    return sign * int(digits)
