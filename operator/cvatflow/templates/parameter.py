"""Onepanel-style template parameters: the form metadata CVAT shows, and the reserved `cvat-` names."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field, fields
from html.parser import HTMLParser
from typing import Any

from cvatflow.templates.yamlsafe import source_text

PARAMETER_TYPES = (
    "input.text",
    "input.number",
    "input.radio",
    "select.select",
    "select.nodepool",
    "textarea.textarea",
    "editor.yaml",
    "hidden",
)
VISIBILITIES = ("public", "protected", "internal", "private")
# Types whose value must be one of the options (node pools get their options from the node-pool config).
CHOICE_TYPES = ("input.radio", "select.select")
# Argo's rule for parameter and artifact names (an error when broken) and the Onepanel style (a warning).
ARGO_NAME_PATTERN = re.compile(r"^[-a-zA-Z0-9_]+$")
NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

# Reserved parameters (DESIGN.md): cvatflow fills these; `sys-` names are Onepanel's legacy aliases.
ANNOTATION_PATH = "cvat-annotation-path"
OUTPUT_PATH = "cvat-output-path"
NUM_CLASSES = "cvat-num-classes"
FINETUNE_CHECKPOINT = "cvat-finetune-checkpoint"
MODEL = "cvat-model"
DUMP_FORMAT = "dump-format"
NODE_POOL = "sys-node-pool"
LEGACY_ALIASES = {
    "sys-annotation-path": ANNOTATION_PATH,
    "sys-output-path": OUTPUT_PATH,
    "sys-num-classes": NUM_CLASSES,
    "sys-finetune-checkpoint": FINETUNE_CHECKPOINT,
}
RESERVED = (ANNOTATION_PATH, OUTPUT_PATH, NUM_CLASSES, FINETUNE_CHECKPOINT, MODEL, DUMP_FORMAT, NODE_POOL)


def reserved_name(name: str) -> str | None:
    """The reserved role a parameter name plays (legacy aliases resolved), or None for ordinary ones."""
    name = LEGACY_ALIASES.get(name, name)
    return name if name in RESERVED else None


@dataclass(frozen=True)
class Option:
    """One choice of a select or radio parameter."""

    name: str
    value: str


@dataclass
class Parameter:
    """A workflow parameter with every Onepanel field; `value` is always a string, as on the wire."""

    name: str
    value: str = ""
    display_name: str = ""
    hint: str = ""
    type: str = "input.text"
    options: list[Option] = field(default_factory=list)
    required: bool = False
    visibility: str = "public"
    # cvatflow's own metadata: numeric bounds of an `input.number` ("" = none); autofill refuses values outside
    min: str = ""
    max: str = ""

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        """(min, max) as numbers; None where not set (or not a number: validation names that)."""
        def number(text: str) -> float | None:
            return float(text) if text != "" and is_number(text) else None

        return number(self.min), number(self.max)

    @property
    def label(self) -> str:
        """What a form shows as the field's label."""
        return self.display_name or self.name

    @property
    def is_public(self) -> bool:
        return self.visibility == "public" and self.type != "hidden"

    @property
    def role(self) -> str | None:
        """The reserved parameter this one is (see `reserved_name`), if any."""
        return reserved_name(self.name)

    @property
    def option_values(self) -> list[str]:
        return [o.value for o in self.options]

    def to_onepanel(self) -> dict[str, Any]:
        """The parameter as Onepanel wrote it in a manifest, with only the fields that are set."""
        out: dict[str, Any] = {"name": self.name, "value": self.value}
        if self.display_name:
            out["displayName"] = self.display_name
        if self.hint:
            out["hint"] = self.hint
        if self.type != "input.text":
            out["type"] = self.type
        if self.options:
            out["options"] = [{"name": o.name, "value": o.value} for o in self.options]
        if self.required:
            out["required"] = True
        if self.visibility != "public":
            out["visibility"] = self.visibility
        for key in ("min", "max"):
            if getattr(self, key) != "":
                out[key] = getattr(self, key)
        return out

    def to_argo(self) -> dict[str, Any]:
        """Only the fields Argo knows: `description` is the hint as plain text, `enum` the option values."""
        out: dict[str, Any] = {"name": self.name, "value": self.value}
        description = hint_text(self.hint)
        if description:
            out["description"] = description
        if self.options:
            out["enum"] = self.option_values
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Parameter:
        """Read a parameter in Onepanel's form (or Argo's: `description` and `enum` are understood too).

        Fields are taken as they are (an unknown type or visibility is kept, so validation can name it);
        values and options are the text the author wrote (`010`, `on`, `3.10` stay so when the mapping
        comes from `yamlsafe.load_documents`; a plain dict's numbers become strings the way Argo sends them).
        """
        raw_options = data.get("options") if isinstance(data.get("options"), list) else []
        options = [Option(name=source_text(o, "name" if "name" in o else "value"), value=source_text(o, "value"))
                   if isinstance(o, dict) else Option(name=source_text(raw_options, i), value=source_text(raw_options, i))
                   for i, o in enumerate(raw_options)]
        enum = data.get("enum")
        if not options and isinstance(enum, list) and enum:
            options = [Option(name=source_text(enum, i), value=source_text(enum, i)) for i in range(len(enum))]
        return cls(
            name=source_text(data, "name"),
            value=source_text(data, "value" if "value" in data else "default"),
            display_name=source_text(data, "displayName"),
            hint=source_text(data, "hint" if "hint" in data else "description"),
            type=source_text(data, "type") or "input.text",
            options=options,
            required=data.get("required") in (True, "true", "True"),
            visibility=source_text(data, "visibility") or "public",
            min=source_text(data, "min"),
            max=source_text(data, "max"),
        )


PARAMETER_FIELDS = tuple(f.name for f in fields(Parameter))


def is_number(value: str) -> bool:
    """Whether an `input.number` value parses (Argo carries every value as a string)."""
    try:
        float(value)
    except (ValueError, OverflowError):
        return False
    return True


def wire_string(value: Any) -> str:
    """A YAML scalar as Argo carries it: a string, with booleans lower-case and None empty."""
    return source_text({"value": value}, "value")


class _HintParser(HTMLParser):
    """Collects a hint's text and its links; every other tag is dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[tuple[str, str | None]] = []  # (text, href of the enclosing link)
        self._href: str | None = None
        self._hidden = 0  # inside <script> or <style>, whose content is not text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        if tag == "a":
            href = dict(attrs).get("href") or ""
            self._href = href if href.startswith(("http://", "https://")) else None

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden = max(0, self._hidden - 1)
        if tag == "a" and self._href:
            self.parts.append(("", self._href))  # an empty text with the href marks where the link ends
        if tag == "a":
            self._href = None

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append((data, self._href))


def _hint_parts(hint: str) -> list[tuple[str, str | None]]:
    parser = _HintParser()
    parser.feed(hint or "")
    parser.close()
    return parser.parts


def hint_text(hint: str) -> str:
    """A hint as plain text: tags removed, each link's address kept after its text."""
    out = []
    for text, href in _hint_parts(hint):
        out.append(f" ({href})" if href and not text else text)
    return re.sub(r"\s+", " ", "".join(out)).strip()


def hint_html(hint: str) -> str:
    """A hint safe to put in a page: text escaped, only `<a href>` links to http(s) survive."""
    out = []
    for text, href in _hint_parts(hint):
        if href and not text:
            continue
        if href:
            out.append(f'<a href="{html.escape(href)}" target="_blank" rel="noopener">{html.escape(text)}</a>')
        else:
            out.append(html.escape(text))
    return "".join(out).strip()
