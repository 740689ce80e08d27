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


MODELS = ("detr", "maskrcnn", "rtdetr", "dfine")


@pytest.fixture(scope="module")
def launched(data, tmp_path_factory) -> Path:
    """One torchrun launch (2 ranks) for every model's scenario and the first half of the resume test."""
    out = tmp_path_factory.mktemp("ranks")
    torchrun(str(WORKER), "ranks", ",".join(MODELS), str(data), str(out))
    return out


def both(launched: Path, model: str) -> list[dict]:
    return [torch.load(launched / model / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("model", MODELS)
def test_two_ranks_step_like_one_process_on_the_same_global_batch(launched, model):
    ranks = both(launched, model)
    a, b = ranks[0]["step"], ranks[1]["step"]
    # DDP kept the replicas together: bit-identical weights and gradients on both ranks
    assert torch.equal(a["params"], b["params"]) and torch.equal(a["grads"], b["grads"])
    # ... and the step is the one a single process takes on the 4 images (balanced boxes)
    assert relative(a["grads"], a["ref_grads"]) < 1e-4
    assert torch.allclose(a["params"], a["ref_params"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["detr", "rtdetr", "dfine"])
def test_box_count_terms_use_the_global_box_count(launched, model):
    """1 object on each of rank 0's images, 4 on rank 1's: transformers alone would weigh rank 0's boxes 4x
    (its DETR, RT-DETR and D-FINE criteria divide by the rank's own count). The reference criteria all-reduce
    the count: the mean of the ranks' terms, and the gradient, equal one process's on all 4 images. RT-DETR's
    whole loss (every layer's terms) is compared; Mask R-CNN's box losses are means over sampled proposals,
    with no object count to share."""
    ranks = both(launched, model)
    for term, ref in ranks[0]["boxes"]["ref_losses"].items():
        if term != "sum" or model == "rtdetr":
            mean = sum(r["boxes"]["losses"][term] for r in ranks) / 2
            assert mean == pytest.approx(ref, rel=1e-5), term
    assert relative(ranks[0]["boxes"]["grads"], ranks[0]["boxes"]["ref_grads"]) < 1e-4


@pytest.mark.parametrize("model", MODELS)
def test_a_rank_without_objects_finishes_two_steps(launched, model):
    ranks = both(launched, model)
    assert torch.equal(ranks[0]["empty"]["params"], ranks[1]["empty"]["params"])
    assert torch.isfinite(ranks[0]["empty"]["params"]).all()


@pytest.mark.parametrize("variant", ["rtdetr_v2_tiny", "dfine_tiny"])
def test_rtdetr_renormalises_every_layers_box_count_terms_and_nothing_else(variant):
    """`num_boxes` rescales the box-count terms of the final, auxiliary, encoder and denoising layers (named
    loss_bbox, loss_bbox_aux_0, loss_bbox_dn_0, ...) and leaves D-FINE's loss_ddf (a mean) alone."""
    import re

    from cvatflow.models import get_adapter
    from ddp_worker import batch

    adapter = get_adapter("rtdetr")
    model = adapter.build(adapter.settings(variant, 64), 2, pretrained=False).train()
    outs = []
    model.register_forward_hook(lambda module, args, out: outs.append(out))
    images, targets = batch([2, 3, 0, 0], masks=False)
    with torch.no_grad():
        torch.manual_seed(0)  # the same denoising queries in both calls
        plain = adapter.losses(model, images[:2], targets[:2], "cpu")
        torch.manual_seed(0)
        scaled = adapter.losses(model, images[:2], targets[:2], "cpu", num_boxes=2.5)  # 5 boxes; 2.5 on average
    counted = [k for k in outs[0].loss_dict if re.match(r"loss_(vfl|bbox|giou|fgl)(_|$)", k)]
    assert any("_aux_" in k for k in counted) and any("_dn_" in k for k in counted)
    assert float(outs[1].loss) == pytest.approx(float(plain["sum"]))
    expected = float(plain["sum"]) + (5 / 2.5 - 1) * float(sum(outs[0].loss_dict[k] for k in counted))
    assert float(scaled["sum"]) == pytest.approx(expected, rel=1e-5)
    assert float(scaled["loss_bbox"]) == pytest.approx(2 * float(plain["loss_bbox"]), rel=1e-6)


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


def test_resume_at_another_world_size_equals_an_uninterrupted_run(data, launched):
    """Preempted after step 2 at two processes (global batch 4 = 2 x 2; in the shared launch), resumed at one
    process, against one process with global batch 4 as 2 accumulated micro-batches of 2. Adam magnifies float
    noise in tiny gradients, so every run here has 1 thread per process (as torchrun's)."""
    whole, split = launched / "whole", launched / "split"
    assert torch.load(split / "checkpoints" / "last.pt", weights_only=False)["step"] == 2
    done = alone(str(WORKER), "resume", str(data), str(launched))
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


# -- the exit status of a launch: what the templates' retry policy reads ---------------------------------------

def launch(*args: str) -> list[str]:
    return [sys.executable, "-m", "cvatflow.training.cli", "torchrun", "--standalone", "--nproc-per-node=2", *args]


def test_a_killed_worker_ends_the_launch_with_128_plus_its_signal():
    """torchrun exits 1 whatever killed a worker (here the OOM killer's SIGKILL); the templates retry 137/143.
    (Other signals: test_exit_status_and_the_program_the_launcher_runs.)"""
    done = subprocess.run(launch(str(WORKER), "kill", "SIGKILL"), check=False, capture_output=True, text=True,
                          timeout=120, env=env(), cwd=ROOT)
    assert done.returncode == 137, done.stderr[-3000:]
    assert "error: worker rank 1 ended with signal SIGKILL; exit status 137" in done.stderr


def test_a_preempted_launcher_exits_143(tmp_path):
    """Kubernetes stops a pod with SIGTERM to its first process, the launcher: it stops the workers and exits 143."""
    import signal
    import time

    process = subprocess.Popen(launch(str(WORKER), "wait", str(tmp_path)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    deadline = time.monotonic() + 120
    while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-3000:]
    assert "error: torchrun stopped by SIGTERM" in err


def test_exit_status_and_the_program_the_launcher_runs():
    from cvatflow.training.launch import _program, exit_status

    assert [exit_status(c) for c in (-9, -15, 1, 3, 0)] == [137, 143, 1, 3, 1]
    # our console scripts run as modules of the launcher's interpreter (PATH need not have them)
    assert _program(["--standalone", "--no-python", "cvatflow-train", "detr", "train"]) == [
        "--standalone", "-m", "cvatflow.training.cli", "detr", "train"]
    assert _program(["--no-python", "/bin/true"]) == ["--no-python", "/bin/true"]
