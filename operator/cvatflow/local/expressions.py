"""Argo's `{{...}}` substitution and `when` conditions, evaluated safely for the local executor."""
from __future__ import annotations

import ast
import re
from collections.abc import Mapping

from cvatflow.errors import RunError

REFERENCE = re.compile(r"{{\s*([^{}]+?)\s*}}")


def substitute(text: str, scope: Mapping[str, str], where: str = "") -> str:
    """Replace every `{{name}}` with its value; an unknown name is an error, as Argo makes it."""
    def value(match: re.Match) -> str:
        key = match.group(1)
        if key not in scope:
            raise RunError(f"{where or 'template'}: {{{{{key}}}}} has no value in this run; "
                           f"check the parameter or task name")
        return scope[key]

    return REFERENCE.sub(value, text)


def substitute_all(value, scope: Mapping[str, str], where: str = ""):
    """`substitute` through lists and mappings."""
    if isinstance(value, str):
        return substitute(value, scope, where)
    if isinstance(value, list):
        return [substitute_all(v, scope, where) for v in value]
    if isinstance(value, dict):
        return {k: substitute_all(v, scope, where) for k, v in value.items()}
    return value


_TOKENS = re.compile(r"\s*(?:(?P<string>'[^']*'|\"[^\"]*\")|(?P<op>&&|\|\||==|!=|<=|>=|<|>|!|\(|\))"
                     r"|(?P<word>[A-Za-z0-9_.\-]+))")


def evaluate_when(expression: str) -> bool:
    """A `when` condition after substitution: strings, numbers, true/false, == != < > <= >=, && || ! and ()."""
    python, pos = [], 0
    expression = expression.strip()
    while pos < len(expression):
        match = _TOKENS.match(expression, pos)
        if not match or match.end() == pos:
            raise RunError(f"when: cannot read {expression!r} at {expression[pos:]!r}")
        pos = match.end()
        if match.group("string") is not None:
            python.append(repr(match.group("string")[1:-1]))
        elif match.group("op"):
            python.append({"&&": " and ", "||": " or ", "!": " not "}.get(match.group("op"), match.group("op")))
        else:
            word = match.group("word")
            python.append({"true": "True", "false": "False"}.get(word.lower(), repr(_number_or_text(word))))
    try:
        tree = ast.parse("".join(python), mode="eval")
    except SyntaxError:
        raise RunError(f"when: {expression!r} is not a condition Argo understands") from None
    return bool(_eval(tree.body, expression))


def _number_or_text(word: str):
    try:
        return float(word)
    except ValueError:
        return word


def _eval(node: ast.AST, source: str):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, source) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _eval(node.operand, source)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, source)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, source)
            ok = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
                  ast.Gt: lambda a, b: a > b, ast.LtE: lambda a, b: a <= b, ast.GtE: lambda a, b: a >= b}
            if type(op) not in ok:
                break
            if not ok[type(op)](left, right):
                return False
            left = right
        else:
            return True
    raise RunError(f"when: {source!r} uses an operator the local executor does not support")
