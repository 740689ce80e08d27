"""DDP on 2 CPU processes (torchrun, gloo): identical weights, gradients equal to one process, empty ranks, resume."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from paths import ROOT
from training_fixtures import make_dataset

WORKER = Path(__file__).with_name("ddp_worker.py")


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "operator"), "OMP_NUM_THREADS": "1"}


def torchrun(*args: str, nproc: int = 2, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The worker (or any module/script args) in `nproc` processes under torchrun, with this venv's python."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env={**env(), **(extra_env or {})},
                          cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def alone(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, timeout=300,
                          env={**env(), **(extra_env or {})}, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ddp") / "data", images=12, size=64)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


@pytest.fixture(scope="module", params=["detr", "maskrcnn"])
def ranks(request, data, tmp_path_factory) -> list[dict]:
    """Both ranks' results of the `steps` scenario (one torchrun launch per model)."""
    out = tmp_path_factory.mktemp(request.param)
    torchrun(str(WORKER), "steps", request.param, str(data), str(out))
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


def test_two_ranks_step_like_one_process_on_the_same_global_batch(ranks):
    a, b = ranks[0]["step"], ranks[1]["step"]
    # DDP kept the replicas together: bit-identical weights and gradients on both ranks
    assert torch.equal(a["params"], b["params"]) and torch.equal(a["grads"], b["grads"])
    # ... and the step is the one a single process takes on the 4 images (balanced boxes)
    assert relative(a["grads"], a["ref_grads"]) < 1e-4
    assert torch.allclose(a["params"], a["ref_params"], rtol=1e-5, atol=1e-6)


def test_box_terms_use_the_global_box_count(ranks):
    """1 object on each of rank 0's images, 4 on rank 1's: transformers alone would weigh rank 0's boxes 4x."""
    if "boxes" not in ranks[0]:
        return  # Mask R-CNN: its box losses are means over sampled proposals, no object count to share
    for term in ("loss_bbox", "loss_giou"):
        mean = sum(r["boxes"]["losses"][term] for r in ranks) / 2
        assert mean == pytest.approx(ranks[0]["boxes"]["ref_losses"][term], rel=1e-5)
    assert relative(ranks[0]["boxes"]["grads"], ranks[0]["boxes"]["ref_grads"]) < 1e-4


def test_a_rank_without_objects_finishes_two_steps(ranks):
    assert torch.equal(ranks[0]["empty"]["params"], ranks[1]["empty"]["params"])
    assert torch.isfinite(ranks[0]["empty"]["params"]).all()


def test_only_rank_zero_writes_and_nproc_per_node_launches_torchrun(data, tmp_path):
    out = tmp_path / "out"
    hp = "max_steps: 2\nval_every: 100\nnum_workers: 0\nimage_size: 64\nbatch_size: 2\nwarmup_steps: 1\n"
    done = alone("-m", "cvatflow.training.cli", "detr", "train", "--data", str(data), "--output", str(out),
                 "--model", "detr_small", "--no-pretrained", "--no-export", "--device", "cpu",
                 "--hyperparameters", hp, "--nproc-per-node", "2")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    # one process's events: each step's progress once, one validation, one checkpoint
    assert [e["current"] for e in lines if e["event_type"] == "EventType.PROGRESS"] == [1, 2]
    assert len([e for e in lines if e.get("type") == "val"]) == 1
    train = [e for e in lines if e.get("type") == "train"]
    assert train and train[-1]["metrics"]["images_per_s"] > 0
    assert done.stdout.count("global batch 4 = batch_size 2 × 2 process(es)") == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "last.pt", "step_00000002.pt"]
    assert not list(out.rglob(".*tmp*"))
    info = json.loads((out / "experiment_info.json").read_text())
    assert info["distributed"] == {"world_size": 2, "batch_size": 2, "grad_accum": 1, "global_batch": 4}
    last = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert (last["world_size"], last["global_batch"], last["grad_accum"]) == (2, 4, 1)
    assert len(list((out / "tensorboard").iterdir())) == 1  # one event file: rank 0's


def test_resume_at_another_world_size_equals_an_uninterrupted_run(data, tmp_path):
    """Adam magnifies float noise in tiny gradients, so every run here has 1 thread per process (as torchrun's)."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    # uninterrupted: one process, global batch 4 as 2 accumulated micro-batches of 2
    alone(str(WORKER), "resume", "detr", str(data), str(whole), "2")
    # preempted after step 2 at two processes (global batch 4 = 2 × 2), resumed at one process
    torchrun(str(WORKER), "resume", "detr", str(data), str(split), extra_env={"STOP": "2"})
    assert torch.load(split / "checkpoints" / "last.pt", weights_only=False)["step"] == 2
    done = alone(str(WORKER), "resume", "detr", str(data), str(split))
    assert "global batch 4 kept at 1 process(es) × batch_size 2 × grad_accum 2" in done.stdout
    a = torch.load(whole / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(split / "checkpoints" / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    for key, value in a["model"].items():
        assert torch.allclose(value.float(), b["model"][key].float(), rtol=1e-4, atol=1e-5), key


def test_grad_accum_and_linear_lr_scaling_in_one_process(data, tmp_path, capsys):
    from cvatflow.training.loop import Run, Setup, Trainer

    hp = "batch_size: 2\ngrad_accum: 3\nlr_scaling: linear\nlr: 0.001\nnum_workers: 0\nimage_size: 64\n"
    trainer = Trainer(Setup(Run(model="detr", data=data, output=tmp_path, hyperparameters=hp,
                                variant="detr_small", pretrained=False, export=False, device="cpu")))
    assert trainer.global_batch == 6 and trainer.net is trainer.model  # one process: no DDP wrapper
    assert trainer.optimizer.param_groups[0]["initial_lr"] == pytest.approx(0.003)
    assert "lr_scaling linear: lr 0.001 -> 0.003" in capsys.readouterr().out
    # an optimizer step takes grad_accum micro-batches, each full (the last global batch is padded)
    assert all(len(group) == 3 and all(len(images) == 2 for images, _ in group)
               for group in trainer._global_batches())
