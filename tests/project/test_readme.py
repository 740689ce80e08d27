"""The README's examples work as written: every shell block runs, every `<!-- readme-test -->` Python block runs.

A shell block (```sh, ```bash or ```console) runs with bash (`set -eo pipefail`) in a scratch copy of the
repository root (its top-level entries linked, so files an example writes stay out of the checkout), with a
fresh temporary `CVATFLOW_HOME`, the venv's bin folder and `.tools/` first on PATH, and `.venv` linked to the
venv running the tests (so `source .venv/bin/activate` works). `make <target>` lines are dry runs
(`make -n`): they would rebuild the venv or run this very suite. A block announced by the line
`<!-- readme: needs cluster -->` (or `cvat`, `gpu`, `network`) right before its fence is not run; each of its
commands is run with `--help` instead, which checks that the command and sub-command exist.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from paths import ROOT

README = (ROOT / "README.md").read_text()
NEEDS = ("cluster", "cvat", "gpu", "network")
SHELLS = ("sh", "bash", "console")

PYTHON_BLOCKS = re.findall(r"<!-- readme-test -->\s*```python\n(.*?)```", README, re.DOTALL)

# A fence: its indentation, its language and its body, up to the closing fence at the same indentation.
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- readme: needs (?P<what>[a-z]+) -->\s*$")
# Blocks that train a model: they take a minute or two each on 2 cores (`make test-fast` leaves them out).
TRAINS = re.compile(r"cvatflow-train \S+ train|cvatflow run .*--wait")
# Top-level entries of the checkout an example never needs (and must not write into).
NOT_LINKED = {".git", ".venv", ".pytest_cache", ".hypothesis", ".ruff_cache", "__pycache__"}


@dataclass
class Block:
    line: int
    lang: str
    needs: str | None
    code: str


def fences(text: str) -> list[Block]:
    """Every fenced block of `text`, with the `needs` marker on the line before it (or None)."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        blocks.append(Block(line=text.count("\n", 0, match.start()) + 1, lang=match["lang"].strip(),
                            needs=marker["what"] if marker else None,
                            code=textwrap.dedent(match["body"])))
    return blocks


BLOCKS = fences(README)
SHELL_BLOCKS = [b for b in BLOCKS if b.lang in SHELLS]


def _param(block: Block):
    marks = [pytest.mark.slow] if block.needs is None and TRAINS.search(block.code.replace("\\\n", " ")) else []
    return pytest.param(block, id=f"line{block.line}" + (f"-needs-{block.needs}" if block.needs else ""),
                        marks=marks)


def commands(code: str) -> list[list[str]]:
    """The simple commands of a shell block: continuations joined, comments, pipes, `&&`, `;` and `&` split
    off, leading `NAME=value` assignments dropped; heredoc bodies are skipped."""
    result = []
    lines = iter(code.replace("\\\n", " ").splitlines())
    for line in lines:
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", line)
        if heredoc:
            for rest in lines:
                if rest.strip() == heredoc[1]:
                    break
            line = line[:heredoc.start()]
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current: list[str] = []
        for token in [*lexer, ";"]:
            if token in {"|", "||", "&&", ";", "&", ">", ">>", "<"} or set(token) <= set("|&;<>"):
                if current:
                    result.append(current)
                current = []
                continue
            if not current and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
                continue
            current.append(token)
    return result


def help_command(words: list[str]) -> list[str]:
    """The command's words up to its first option, then `--help`: `kubectl apply -f x` -> `kubectl apply --help`."""
    head = []
    for word in words:
        if word.startswith("-"):
            break
        head.append(word)
    return [*head, "--help"]


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A scratch repository root and the environment a fresh shell after `source .venv/bin/activate` has."""
    venv = Path(sys.prefix)
    assert sys.prefix != sys.base_prefix, "run the tests with the project's virtualenv (make setup)"
    root = tmp_path / "repo"
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(venv)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CVATFLOW_") and k not in {"CVAT_URL", "CVAT_ACCESS_TOKEN", "ARGO_SERVER_URL",
                                                         "ARGO_TOKEN", "KUBECONFIG"}}
    env |= {"CVATFLOW_HOME": str(home), "PATH": os.pathsep.join([str(venv / "bin"), str(ROOT / ".tools"),
                                                                  env.get("PATH", "")]),
            "COLUMNS": "120", "NO_COLOR": "1"}
    return root, env


def run_shell(script: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `script` with bash in its own process group; whatever it left running is stopped afterwards."""
    process = subprocess.Popen(["bash", "-c", "set -eo pipefail\n" + script], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # a server an example started in the background
        except ProcessLookupError:
            pass
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def dry_make(code: str) -> str:
    """`make <target>` lines become `make -n <target>`: the target exists, nothing is built or run."""
    return re.sub(r"^(\s*)make\b(?!\s+-n)", r"\1make -n", code, flags=re.MULTILINE)


def test_the_readme_has_tested_examples():
    assert len(PYTHON_BLOCKS) >= 2
    assert len([b for b in SHELL_BLOCKS if b.needs is None]) >= 8
    assert len([b for b in SHELL_BLOCKS if b.needs]) >= 4


def test_every_code_block_names_its_language():
    """An untagged fence would hide commands from this test; outputs are ```text."""
    untagged = [b.line for b in BLOCKS if not b.lang]
    assert untagged == [], f"README.md: fences without a language at lines {untagged}; use ```sh or ```text"


def test_markers_name_what_is_needed():
    markers = re.findall(r"<!-- readme: needs ([^>]*?) -->", README)
    assert markers and set(markers) <= set(NEEDS), markers
    marked = [b for b in BLOCKS if b.needs]
    assert len(marked) == len(markers), "every needs-marker stands right before a code block"
    assert all(b.lang in SHELLS for b in marked)


def test_commands_are_split_as_a_shell_would():
    code = ("CVAT_ACCESS_TOKEN=x cvatflow dataset dump --cvat-task 42 \\\n    --to s3://t  # a comment\n"
            "kubectl get wftmpl -o yaml | cvatflow templates validate /dev/stdin\n"
            "cat > f <<'YAML'\nkey: value\nYAML\nserve --port 1 &\n")
    assert commands(code) == [["cvatflow", "dataset", "dump", "--cvat-task", "42", "--to", "s3://t"],
                              ["kubectl", "get", "wftmpl", "-o", "yaml"],
                              ["cvatflow", "templates", "validate", "/dev/stdin"],
                              ["cat"], ["f"], ["serve", "--port", "1"]]
    assert help_command(["kubectl", "apply", "-n", "argo", "-f", "x.yaml"]) == ["kubectl", "apply", "--help"]
    assert dry_make("make setup   # x\n  make -n demo\n") == "make -n setup   # x\n  make -n demo\n"


@pytest.mark.parametrize("block", [_param(b) for b in SHELL_BLOCKS])
def test_readme_shell_block_works_as_written(block: Block, workspace):
    root, env = workspace
    if block.needs is None:
        result = run_shell(dry_make(block.code), root, env)
        assert result.returncode == 0, (f"README.md line {block.line}: exit {result.returncode}\n"
                                        f"{block.code}\n--- output (end) ---\n{result.stdout[-6000:]}")
        return
    for words in commands(block.code):
        program = words[0]
        if program in {"export", "cd", "source", ".", "echo", "cat", "until", "do", "done", "sleep", "kill"}:
            continue
        assert shutil.which(program, path=env["PATH"]), (
            f"README.md line {block.line}: `{program}` is not installed; the --help check of a block that "
            f"needs a {block.needs} requires it (make helm puts helm and kubectl in .tools/)")
        argv = help_command(words)
        result = subprocess.run(argv, check=False, cwd=root, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (f"README.md line {block.line}: `{shlex.join(argv)}` exit "
                                        f"{result.returncode}\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


@pytest.mark.parametrize("code", PYTHON_BLOCKS, ids=[f"block{i}" for i in range(len(PYTHON_BLOCKS))])
def test_readme_python_example_runs(code, capsys):
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip()


def test_readme_names_both_setup_commands():
    text = README
    assert "make demo" in text and "make test" in text
    assert "source .venv/bin/activate" in text  # how `cvatflow` gets on PATH after `make setup`
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_training_examples_say_they_are_smoke_tests():
    """A 1-2 epoch example gives mAP near 0; the README must say so next to it, or readers think it broken."""
    lines = README.splitlines()
    for block in SHELL_BLOCKS:
        joined = block.code.replace("\\\n", " ")
        if not re.search(r"epochs[= ][12]\b|'hyperparameters=epochs: 1'", joined) or "refused" in joined:
            continue
        before = "\n".join(lines[max(0, block.line - 4):block.line]).lower()
        assert "smoke test" in before, f"README.md line {block.line}: say that this short run is a smoke test"
