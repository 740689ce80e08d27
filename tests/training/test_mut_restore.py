"""Checkpoint files for resume (last.pt, best.pt, numbered ones) and their events, with tiny payloads: kills
cosmic-ray's mutants of training/checkpoints.py (`make mutation TARGETS=restore`). That a resumed run continues
exactly as an uninterrupted one is tests/training/test_training_resume_state.py's to prove."""
from __future__ import annotations

import json
import os

import pytest
import torch

from cvatflow.errors import TrainingError
from cvatflow.training import checkpoints
from cvatflow.training.checkpoints import Checkpoints, load, save


def payload(step: int) -> dict:
    return {"step": step, "model": {"w": torch.full((3,), float(step))}}


def events(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_save_then_load_gives_the_payload_back_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "deep" / "er" / "last.pt"
    size = save(path, payload(7))
    assert size == path.stat().st_size > 0
    back = load(path)
    assert back["step"] == 7 and torch.equal(back["model"]["w"], torch.full((3,), 7.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]
    save(path, payload(8))  # over an existing one
    assert load(path)["step"] == 8 and sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_an_unreadable_checkpoint_is_one_clear_error_that_says_what_to_do(content, tmp_path):
    path = tmp_path / "last.pt"
    if content is None:
        save(path, payload(1))
        content = path.read_bytes()[:40]  # cut off
    path.write_bytes(content)
    with pytest.raises(TrainingError, match="cannot read the checkpoint .*delete it to start over") as caught:
        load(path)
    assert str(path) in str(caught.value)


def test_last_is_none_until_saved_and_saving_it_resets_the_clock(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(checkpoints.time, "monotonic", lambda: clock[0])
    store = Checkpoints(tmp_path / "out")
    assert store.last() is None
    clock[0] = 130.0
    assert store.seconds_since_last() == 30.0
    store.save_last(payload(3))
    assert store.last() == tmp_path / "out" / "checkpoints" / "last.pt"
    assert load(store.last())["step"] == 3
    clock[0] = 135.5
    assert store.seconds_since_last() == 5.5
    (tmp_path / "out" / "checkpoints" / "last.pt").unlink()
    (tmp_path / "out" / "checkpoints" / "last.pt").mkdir()  # a folder of that name is no checkpoint
    assert store.last() is None


def test_numbered_checkpoints_keep_the_newest_and_best_follows_the_best(tmp_path, capsys):
    store = Checkpoints(tmp_path, keep=2)
    assert store.numbered() == []
    capsys.readouterr()
    for step, best in ((5, True), (10, False), (15, True), (20, False)):
        path = store.save_numbered(step, payload(step), best, {"mAP": step / 100})
        assert path == tmp_path / "checkpoints" / f"step_{step:08d}.pt"
    assert [p.name for p in store.numbered()] == ["step_00000015.pt", "step_00000020.pt"]
    assert load(tmp_path / "checkpoints" / "best.pt")["step"] == 15
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == \
        ["best.pt", "step_00000015.pt", "step_00000020.pt"]
    seen = events(capsys)
    assert [(e["id"], e["subdir"], e["best_now"], e["optional"]) for e in seen] == [
        (1, "checkpoints/step_00000005.pt", True, {"step": 5, "mAP": 0.05}),
        (2, "checkpoints/step_00000010.pt", False, {"step": 10, "mAP": 0.1}),
        (3, "checkpoints/step_00000015.pt", True, {"step": 15, "mAP": 0.15}),
        (4, "checkpoints/step_00000020.pt", False, {"step": 20, "mAP": 0.2})]
    assert all(e["sizeb"] > 0 for e in seen)
    assert seen[3]["sizeb"] == os.path.getsize(tmp_path / "checkpoints" / "step_00000020.pt")


def test_a_resumed_run_numbers_its_checkpoint_events_on(tmp_path, capsys):
    first = Checkpoints(tmp_path, keep=5)
    for step in (1, 2):
        first.save_numbered(step, payload(step), False, {})
    resumed = Checkpoints(tmp_path, keep=5)
    capsys.readouterr()
    resumed.save_numbered(3, payload(3), False, {})
    assert [e["id"] for e in events(capsys)] == [3]


def test_keep_zero_keeps_no_numbered_checkpoint_but_best(tmp_path):
    store = Checkpoints(tmp_path, keep=0)
    store.save_numbered(1, payload(1), True, {})
    store.save_numbered(2, payload(2), False, {})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.pt"]
    assert load(tmp_path / "checkpoints" / "best.pt")["step"] == 1


def test_keep_one_keeps_the_last(tmp_path):
    store = Checkpoints(tmp_path, keep=1)
    for step in (1, 2, 3):
        store.save_numbered(step, payload(step), False, {})
    assert [p.name for p in store.numbered()] == ["step_00000003.pt"]


def test_by_default_the_three_newest_numbered_checkpoints_are_kept(tmp_path):
    store = Checkpoints(tmp_path)
    for step in range(1, 6):
        store.save_numbered(step, payload(step), False, {})
    assert [p.name for p in store.numbered()] == [f"step_{step:08d}.pt" for step in (3, 4, 5)]
