"""atomic_write / atomic_path: a reader sees the old file or the whole new one; a failure leaves nothing behind."""
from __future__ import annotations

import pytest

from cvatflow.atomic import atomic_path, atomic_write


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "status.json"
    target.write_text("old")
    atomic_write(target, '{"phase": "Running"}')
    atomic_write(tmp_path / "blob", b"\x00\x01")
    assert target.read_text() == '{"phase": "Running"}'
    assert (tmp_path / "blob").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob", "status.json"]


def test_a_failure_while_writing_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "model.tar"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.tar"]


def test_two_writers_of_one_file_get_different_temporary_names(tmp_path):
    with atomic_path(tmp_path / "x") as first, atomic_path(tmp_path / "x") as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("1")
        second.write_text("2")
    assert (tmp_path / "x").read_text() == "1"  # the outer writer renames last
