"""A preempted run resumed from last.pt continues exactly as the uninterrupted run on the same seed: the model,
optimizer, LR schedule and loss scaler it restores, and every step after, equal the uninterrupted run's."""
from __future__ import annotations

import copy

import pytest

from cvatflow.training import loop
from cvatflow.training.checkpoints import Checkpoints
from training_fixtures import make_dataset

pytestmark = pytest.mark.slow

# 6 training images in batches of 2: 3 steps an epoch, so the kill after step 2 lands mid-epoch and step 5 is in
# the next epoch. No flips: the augmentation's random draws are not part of the checkpoint (see the report of
# issue 24), and this test is about the state the checkpoint does carry.
HP = ("max_steps: 5\nbatch_size: 2\nimage_size: 64\nval_every: 100\nval_percent: 25\nnum_workers: 0\n"
      "warmup_steps: 2\ncheckpoint_every: 1\nhflip: 0\ngrad_clip: 0.5\n")
KILLED_AFTER = 2
SAVE_LAST = Checkpoints.save_last  # the real one, whatever a test patches


class Preempted(BaseException):
    """The node going away: nothing after it runs (BaseException, so no `except Exception` catches it)."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("resume") / "data", images=8, seed=5, size=64)


def cpu_scaler():
    """A GradScaler that works on CPU: without a GPU the trainer's scaler is disabled and its state empty, so
    restoring it or not would make no difference to see. A small growth interval makes its state move."""
    import torch

    class CpuScaler(torch.amp.GradScaler):
        def __init__(self, *args, **kwargs):
            super().__init__("cpu", init_scale=2.0 ** 10, growth_interval=2)

    return CpuScaler


def train(data, output, monkeypatch, kill_after: int | None = None) -> dict[int, dict]:
    """Train (or resume) into `output`; returns every last.pt payload written, by step, as saved."""
    saved: dict[int, dict] = {}

    def recording(self, payload):
        SAVE_LAST(self, payload)
        saved[payload["step"]] = copy.deepcopy(payload)
        if payload["step"] == kill_after:
            raise Preempted

    monkeypatch.setattr(Checkpoints, "save_last", recording)
    # No evaluation, no final outputs: only the training state is under test (and evaluation is slow on CPU).
    monkeypatch.setattr(loop.Trainer, "_validate", lambda self, writer: self.checkpoints.save_last(self.payload()))
    monkeypatch.setattr(loop.Trainer, "_finish", lambda self: {})
    run = loop.Run(model="detr", data=data, output=output, hyperparameters=HP, variant="detr_small",
                   pretrained=False, export=False, device="cpu")
    trainer = loop.Trainer(loop.Setup(run))
    if trainer.step:
        saved["restored"] = copy.deepcopy(trainer.payload())
    try:
        trainer.train()
    except Preempted:
        pass
    return saved


def assert_same(got, expected, where: str = "") -> None:
    import torch

    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and torch.equal(got, expected), f"{where} differs"
    elif isinstance(expected, dict):
        assert set(got) == set(expected), f"{where}: keys {sorted(map(str, got))} != {sorted(map(str, expected))}"
        for key in expected:
            assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), f"{where}: length {len(got)} != {len(expected)}"
        for i, (a, b) in enumerate(zip(got, expected)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"


STATE = ("model", "optimizer", "scheduler", "scaler", "step")


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """The uninterrupted run, and the preempted run resumed, each recorded step by step."""
    import torch

    mp = pytest.MonkeyPatch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only wait on each other (10x slower on a busy machine)
    try:
        mp.setattr(torch.amp, "GradScaler", cpu_scaler())
        root = tmp_path_factory.mktemp("runs")
        whole = train(data, root / "whole", mp)
        first = train(data, root / "preempted", mp, kill_after=KILLED_AFTER)
        resumed = train(data, root / "preempted", mp)
    finally:
        mp.undo()
        torch.set_num_threads(threads)
    return whole, first, resumed


def test_the_preempted_run_stopped_where_it_was_killed(runs):
    whole, first, resumed = runs
    assert sorted(whole) == [1, 2, 3, 4, 5]
    assert sorted(first) == [1, 2]
    assert sorted(k for k in resumed if k != "restored") == [3, 4, 5]
    assert whole[KILLED_AFTER]["scaler"]["_growth_tracker"] != 0 or whole[KILLED_AFTER]["scaler"]["scale"] != 2.0 ** 10


@pytest.mark.parametrize("part", STATE)
def test_the_restored_state_is_the_uninterrupted_run_s_at_that_step(runs, part):
    whole, _, resumed = runs
    assert_same(resumed["restored"][part], whole[KILLED_AFTER][part], part)


@pytest.mark.parametrize("step", [3, 5])
@pytest.mark.parametrize("part", STATE)
def test_every_step_after_the_resume_equals_the_uninterrupted_run(runs, part, step):
    whole, _, resumed = runs
    assert_same(resumed[step][part], whole[step][part], f"step {step}: {part}")

