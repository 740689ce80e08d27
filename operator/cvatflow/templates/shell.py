"""Warn where a parameter is spliced into code a shell or interpreter runs (command injection)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from cvatflow.errors import Problem

SHELLS = {"sh", "bash", "ash", "dash", "zsh", "ksh", "busybox"}
# Interpreters whose `-c` (or `-e`) argument is a program: a spliced value becomes code.
INTERPRETERS = {"python", "python2", "python3", "perl", "ruby", "node", "pwsh", "powershell"}
LAUNCHERS = {"env", "exec", "nohup", "time", "tini", "dumb-init"}  # programs that run the next word
SPLICE = re.compile(r"{{\s*=?[^{}]*\b(workflow|inputs)\.parameters\b")
WARNING_FIX = ("pass parameters as separate `args` items or as `env` variables (read them as \"$NAME\" or from "
               "os.environ) and call the program directly")


def _program(words: list[str]) -> tuple[str, list[str]]:
    """The program a command line runs, past launchers like `/usr/bin/env` and `env A=b`, and its arguments."""
    i = 0
    while i < len(words):
        base = words[i].rsplit("/", 1)[-1]
        if base in LAUNCHERS or (base.startswith("-") and i) or ("=" in base and i):
            i += 1
            continue
        return re.sub(r"[\d.]+$", "", base) or base, words[i + 1:]
    return "", []


def _code_arguments(words: list[str]) -> list[str]:
    """The arguments that are code: what follows `-c` (also inside `-lc`, `-ec`, `-xc`) or `-e`."""
    program, rest = _program(words)
    if program not in SHELLS and program not in INTERPRETERS:
        return []
    flag = "c" if program in SHELLS or program.startswith("python") else "ce"
    for i, word in enumerate(rest):
        if not word.startswith("-"):
            break  # a script file: what follows are its arguments, passed as data
        if not word.startswith("--") and any(c in word[1:] for c in flag):
            return rest[i + 1:]
    # `sh script.sh {{...}}` passes a value as an argument, which is safe; `sh` with no -c reads stdin
    return []


def _container_warnings(body: dict[str, Any], where: str, script: bool) -> Iterator[Problem]:
    command = [w for w in (body.get("command") or []) if isinstance(w, str)] \
        if isinstance(body.get("command"), list) else []
    args = [w for w in (body.get("args") or []) if isinstance(w, str)] if isinstance(body.get("args"), list) else []
    code = _code_arguments(command + args)
    if script and isinstance(body.get("source"), str):
        code.append(body["source"])  # Argo writes `source` to a file the command runs: it is code
    for text in code:
        if SPLICE.search(text):
            yield Problem(where, "a parameter value is spliced into code a shell or interpreter runs (command "
                                 "injection: a value like `x; rm -rf /` runs; cvatflow's rule, Argo accepts it)",
                          WARNING_FIX, severity="warning")
            return


def shell_warnings(tpl: dict[str, Any], where: str) -> Iterator[Problem]:
    """One warning per container of `tpl` (main, script, init, sidecar) that splices a parameter into code.

    Covers `sh -c`, `bash -c`/`-lc`, `/usr/bin/env bash -c`, `python -c` and the like, and `script.source`.
    """
    for key in ("container", "script"):
        body = tpl.get(key)
        if isinstance(body, dict):
            yield from _container_warnings(body, f"{where}.{key}", script=key == "script")
    for key in ("initContainers", "sidecars"):
        items = tpl.get(key)
        for i, body in enumerate(items if isinstance(items, list) else []):
            if isinstance(body, dict):
                yield from _container_warnings(body, f"{where}.{key}[{i}]", script=False)
    container_set = tpl.get("containerSet")
    if isinstance(container_set, dict) and isinstance(container_set.get("containers"), list):
        for i, body in enumerate(container_set["containers"]):
            if isinstance(body, dict):
                yield from _container_warnings(body, f"{where}.containerSet.containers[{i}]", script=False)
