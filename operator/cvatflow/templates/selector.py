"""The Kubernetes label-selector grammar, as Argo parses a resource step's success and failure conditions.

A port of k8s.io/apimachinery pkg/labels/selector.go (`labels.Parse`: lexer, parser, NewRequirement) and the
key/value rules of pkg/util/validation, which argo-workflows' executor calls on `successCondition` and
`failureCondition` (workflow/executor/resource.go) before looking the keys up in the object with gjson.
Whatever `labels.Parse` accepts is accepted here; its error texts are kept so a message can be searched for.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from cvatflow.errors import SelectorError

# Lexer tokens (selector.go string2token); identifiers, end of string and errors are the others.
TOKENS = {")": "ClosedPar", ",": "Comma", "!": "DoesNotExist", "==": "DoubleEquals", "=": "Equals",
          ">": "GreaterThan", "in": "In", "<": "LessThan", "!=": "NotEquals", "notin": "NotIn", "(": "OpenPar"}
SPECIAL = set("=!(),><")
WHITESPACE = set(" \t\r\n")
BINARY = ["in", "notin", "=", "==", "!=", "gt", "lt"]  # selection.Operator values, in selector.go's order
OPERATORS = {"In": "in", "Equals": "=", "DoubleEquals": "==", "GreaterThan": "gt", "LessThan": "lt",
             "NotIn": "notin", "NotEquals": "!="}
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # in, notin, =, ==, !=, gt, lt, exists, !
    values: tuple[str, ...]


def _lex(text: str) -> list[tuple[str, str]]:
    items, pos = [], 0
    while True:
        while pos < len(text) and text[pos] in WHITESPACE:
            pos += 1
        if pos >= len(text):
            items.append(("End", ""))
            return items
        if text[pos] in SPECIAL:
            # Longest run of special symbols that is still a token ("!=" over "!", "==" over "=").
            buffer, last = "", None
            while pos < len(text) and text[pos] in SPECIAL:
                buffer += text[pos]
                if buffer in TOKENS:
                    last = (TOKENS[buffer], buffer)
                elif last is not None:
                    break
                pos += 1
            if last is None:
                items.append(("Error", f"error expected: keyword found '{buffer}'"))
            else:
                items.append(last)
            continue
        start = pos
        while pos < len(text) and text[pos] not in SPECIAL and text[pos] not in WHITESPACE:
            pos += 1
        word = text[start:pos]
        items.append((TOKENS.get(word, "Identifier"), word))


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.position = 0

    def lookahead(self, values: bool = True) -> tuple[str, str]:
        return self._token(self.items[self.position], values)

    def consume(self, values: bool = True) -> tuple[str, str]:
        self.position += 1
        return self._token(self.items[self.position - 1], values)

    @staticmethod
    def _token(item: tuple[str, str], values: bool) -> tuple[str, str]:
        # In the Values context "in" and "notin" are identifiers ("value in (in)").
        return ("Identifier", item[1]) if values and item[0] in ("In", "NotIn") else item

    def parse(self) -> list[Requirement]:
        requirements = []
        while True:
            tok, lit = self.lookahead()
            if tok in ("Identifier", "DoesNotExist"):
                try:
                    requirements.append(self.requirement())
                except SelectorError as exc:
                    raise SelectorError(f"unable to parse requirement: {exc}") from None
                t, literal = self.consume()
                if t == "End":
                    return sorted(requirements, key=lambda r: r.key)
                if t == "Comma":
                    t2, l2 = self.lookahead()
                    if t2 not in ("Identifier", "DoesNotExist"):
                        raise SelectorError(f"found '{l2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            elif tok == "End":
                return sorted(requirements, key=lambda r: r.key)
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        key, operator = self.key_and_inferred_operator()
        if operator in ("exists", "!"):
            return new_requirement(key, operator, [])
        operator = self.operator()
        if operator in ("in", "notin"):
            values = self.values()
        else:
            values = self.exact_value()
        return new_requirement(key, operator, sorted(values))

    def key_and_inferred_operator(self) -> tuple[str, str]:
        operator = ""
        tok, literal = self.consume()
        if tok == "DoesNotExist":
            operator = "!"
            tok, literal = self.consume()
        if tok != "Identifier":
            raise SelectorError(f"found '{literal}', expected: identifier")
        _check_key(literal)
        if self.lookahead()[0] in ("End", "Comma") and operator != "!":
            operator = "exists"
        return literal, operator

    def operator(self) -> str:
        tok, lit = self.consume(values=False)
        if tok not in OPERATORS:
            raise SelectorError(f"found '{lit}', expected: {', '.join(BINARY)}")
        return OPERATORS[tok]

    def values(self) -> set[str]:
        tok, lit = self.consume()
        if tok != "OpenPar":
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok in ("Identifier", "Comma"):
            found = self.identifiers()
            if self.consume()[0] != "ClosedPar":
                raise SelectorError(f"found '{lit}', expected: ')'")
            return found
        if tok == "ClosedPar":  # "()"
            self.consume()
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        found: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == "Identifier":
                found.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 == "Comma":
                    continue
                if tok2 == "ClosedPar":
                    return found
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == "Comma":
                if not found:
                    found.add("")  # "(,"
                tok2 = self.lookahead()[0]
                if tok2 == "ClosedPar":
                    found.add("")  # ",)"
                    return found
                if tok2 == "Comma":
                    self.consume()
                    found.add("")  # ",,"
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        tok = self.lookahead()[0]
        if tok in ("End", "Comma"):
            return {""}
        tok, lit = self.consume()
        if tok == "Identifier":
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def new_requirement(key: str, operator: str, values: list[str]) -> Requirement:
    """selector.go NewRequirement: the operator's value count, integer values for gt/lt, valid keys and values."""
    errors = []
    problem = _key_problem(key)
    if problem:
        errors.append(problem)
    if operator in ("in", "notin") and not values:
        errors.append("for 'in', 'notin' operators, values set can't be empty")
    elif operator in ("=", "==", "!=") and len(values) != 1:
        errors.append("exact-match compatibility requires one single value")
    elif operator in ("gt", "lt"):
        if len(values) != 1:
            errors.append("for 'Gt', 'Lt' operators, exactly one value is required")
        errors += [f"{v!r}: for 'Gt', 'Lt' operators, the value must be an integer"
                   for v in values if not _go_int64(v)]
    for value in values:
        if len(value) > 63:
            errors.append(f"{value!r}: must be no more than 63 characters")
        if not LABEL_VALUE.match(value):
            errors.append(f"{value!r}: a valid label must be an empty string or consist of alphanumeric "
                          f"characters, '-', '_' or '.', and must start and end with an alphanumeric character")
    if errors:
        raise SelectorError("; ".join(errors))
    return Requirement(key, operator, tuple(values))


def parse(text: str) -> list[Requirement]:
    """The requirements of a selector (sorted by key, like labels.Parse). Raises SelectorError with its message."""
    return _Parser(text).parse()


def _check_key(key: str) -> None:
    problem = _key_problem(key)
    if problem:
        raise SelectorError(problem)


def _key_problem(key: str) -> str | None:
    """validation.IsQualifiedName: `[prefix/]name`, name at most 63 characters, prefix a DNS-1123 subdomain."""
    parts = key.split("/")
    if len(parts) == 1:
        name, prefix = parts[0], None
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return f"{key!r}: prefix part must be non-empty"
        if len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix):
            return f"{key!r}: prefix part must be a lowercase RFC 1123 subdomain"
    else:
        return (f"{key!r}: a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
                f"start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/'")
    if not name:
        return f"{key!r}: name part must be non-empty"
    if len(name) > 63:
        return f"{key!r}: name part must be no more than 63 characters"
    if not QUALIFIED_NAME.match(name):
        return (f"{key!r}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                f"end with an alphanumeric character")
    return None


def _go_int64(text: str) -> bool:
    """strconv.ParseInt(text, 10, 64): optional sign, decimal digits only, within int64."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return False
    return -(2 ** 63) <= int(text) < 2 ** 63
