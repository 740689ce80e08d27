"""Benchmark: training steps/s of the harness wrapped in DDP at world size 1 against the plain harness, and at
world size 2 (torchrun, gloo on CPU) against world size 1 on the same global batch."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from train import make_data  # bench/train.py: the synthetic export, extracted

ROOT = Path(__file__).resolve().parents[1]


def harness_steps_per_s(data: Path, out: Path, hp: str, ddp: bool) -> float:
    """Steps/s of the harness in this process; `ddp`: a gloo process group of one and the DDP wrapper, with
    every collective the distributed path makes (loss check, box count, gathers, barriers)."""
    from cvatflow import events
    from cvatflow.training import distributed, loop

    buffer = io.StringIO()
    launched = distributed.launched
    if ddp:
        import torch.distributed as dist

        class One(distributed.World):
            @property
            def distributed(self) -> bool:
                return True

        if not dist.is_initialized():
            dist.init_process_group("gloo", init_method=f"file://{out.parent / 'rendezvous'}", rank=0,
                                    world_size=1)
        distributed.launched = lambda: One()
    try:
        with contextlib.redirect_stdout(buffer):
            trainer = loop.Trainer(loop.Setup(loop.Run(model="detr", data=data, output=out, hyperparameters=hp,
                                                       variant="detr_small", export=False, pretrained=False)))
            assert (type(trainer.net).__name__ == "DistributedDataParallel") == ddp
            trainer.train()
    finally:
        distributed.launched = launched
    train = [e for e in events.parse_lines(buffer.getvalue().splitlines()) if e.get("type") == "train"]
    return train[-1]["metrics"]["images_per_s"] / trainer.global_batch


def cli_steps_per_s(data: Path, out: Path, hp: str, nproc: int, threads: int) -> float:
    """Steps/s of `cvatflow-train detr train --nproc-per-node N` (its own processes)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT / "operator")}
    done = subprocess.run([sys.executable, "-m", "cvatflow.training.cli", "detr", "train", "--data", str(data),
                           "--output", str(out), "--model", "detr_small", "--no-pretrained", "--no-export",
                           "--device", "cpu", "--hyperparameters", hp, "--nproc-per-node", str(nproc)],
                          capture_output=True, text=True, env=env, check=True)
    train = [json.loads(line) for line in done.stdout.splitlines()
             if line.startswith("{") and '"type":"train"' in line]
    info = json.loads((out / "experiment_info.json").read_text())
    return train[-1]["metrics"]["images_per_s"] / info["distributed"]["global_batch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_data(root, args.images, 128)
        common = f"max_steps: {args.steps}\nimage_size: 128\nval_every: 1000\nnum_workers: 0\nhflip: 0.5\n"
        # alternate the two and keep each one's best, so that a noisy neighbour hurts both alike
        plain, wrapped = 0.0, 0.0
        for r in range(args.rounds):
            plain = max(plain, harness_steps_per_s(data, root / f"plain{r}", common + "batch_size: 8\n", False))
            wrapped = max(wrapped, harness_steps_per_s(data, root / f"ddp{r}", common + "batch_size: 8\n", True))
        print(f"detr_small, 128px, batch 8, {args.steps} steps, {torch.get_num_threads()} threads, CPU:")
        print(f"  world 1: plain harness {plain:.3f} steps/s, DDP-wrapped {wrapped:.3f} steps/s: ratio "
              f"{wrapped / plain:.3f} (goal: at least 0.97)")
        one, two = 0.0, 0.0
        cores = os.cpu_count() or 2
        for r in range(args.rounds):
            one = max(one, cli_steps_per_s(data, root / f"w1-{r}", common + "batch_size: 8\n", 1, cores))
            two = max(two, cli_steps_per_s(data, root / f"w2-{r}", common + "batch_size: 4\n", 2,
                                           max(1, cores // 2)))
        print(f"  global batch 8: world 1 (batch 8, {cores} threads) {one:.3f} steps/s, world 2 (batch 4 each, "
              f"{max(1, cores // 2)} threads each, gloo) {two:.3f} steps/s: ratio {two / one:.3f} (the same cores "
              f"split in two: no speed-up is expected on a CPU; on GPUs each rank has its own device)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
