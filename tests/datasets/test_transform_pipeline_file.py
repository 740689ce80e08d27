"""A transform pipeline file is read like a manifest: size, depth and alias caps, one error naming the file."""
from __future__ import annotations

import pytest

from cvatflow.datasets.transform import load_pipeline
from cvatflow.errors import DatasetError

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))


@pytest.mark.parametrize("text, words", [
    ("- class_mapping: [\n", "not valid YAML at line"),
    (BOMB, "alias"),
    ("- flip: {}\n---\n- flip: {}\n", "holds 2 YAML documents"),
])
def test_a_bad_pipeline_file_is_one_error_naming_it(tmp_path, text, words):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    with pytest.raises(DatasetError, match=words) as info:
        load_pipeline(path)
    assert str(info.value).startswith(f"--pipeline {path}") or str(path) in str(info.value)


def test_a_missing_pipeline_file_says_what_to_write(tmp_path):
    with pytest.raises(DatasetError, match="no such file; write a YAML list of layers"):
        load_pipeline(tmp_path / "nope.yaml")
