"""The training Dockerfiles (not buildable here): every COPY source exists and the ENTRYPOINT is ours."""
from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path

import pytest

from paths import ROOT

IMAGES = ["detr", "maskrcnn"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = path.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("image", IMAGES)
def test_copy_sources_exist(image):
    steps = instructions(ROOT / "images" / image / "Dockerfile")
    copies = [args for word, args in steps if word == "COPY"]
    assert copies
    for args in copies:
        parts = [p for p in args.split() if not p.startswith("--")]
        for source in parts[:-1]:  # the build context is the repository root
            assert (ROOT / source).exists(), f"{image}: COPY source {source} does not exist"


@pytest.mark.parametrize("image", IMAGES)
def test_base_is_official_pytorch_and_train_extra_installed(image):
    steps = instructions(ROOT / "images" / image / "Dockerfile")
    base = next(args for word, args in steps if word == "ARG" and args.startswith("BASE="))
    assert base.startswith("BASE=pytorch/pytorch:") and "cuda" in base and "runtime" in base
    assert any(word == "RUN" and '".[train]"' in args for word, args in steps)


@pytest.mark.parametrize("image", IMAGES)
def test_entrypoint_is_a_command_of_the_package(image):
    steps = instructions(ROOT / "images" / image / "Dockerfile")
    entrypoint = json.loads(next(args for word, args in steps if word == "ENTRYPOINT"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint[0] in scripts
    module, function = scripts[entrypoint[0]].split(":")
    main = getattr(importlib.import_module(module), function)
    assert callable(main)
    from cvatflow.models import ADAPTERS

    assert entrypoint[1] == image and image in ADAPTERS
    cmd = json.loads(next(args for word, args in steps if word == "CMD"))
    with pytest.raises(SystemExit) as exit_info:  # the default command parses
        main(entrypoint[1:] + [cmd[0], "--help"])
    assert exit_info.value.code == 0
