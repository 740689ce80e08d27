"""Benchmark: COCO mAP reached in the same wall-clock training budget by detr_small, the tiny RT-DETRv2 and
maskrcnn_resnet18_fpn (and optionally the tiny D-FINE), on the synthetic shapes, side by side in one run.

Each model trains through the real harness (`cvatflow.training.loop.Trainer`: its defaults, LR schedule, clipping)
for `--budget` seconds of training (validation excluded), then its final weights are evaluated on the same
validation images. The LR schedule is laid over the number of steps a short calibration predicts for the budget;
after the first 10 real steps it is laid again over the steps their speed predicts; if the machine slows down,
training still stops at the budget. `--clock cpu` counts this process's CPU seconds
(all its threads) instead of wall-clock seconds: on a machine other jobs load, each model then gets the same
compute, not the same share of a busy machine.

    PYTHONPATH=operator python bench/time_to_map.py --budget 300
    PYTHONPATH=operator python bench/time_to_map.py --budget 120 --clock cpu
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

MODELS = [("detr", "detr_small"), ("rtdetr", "rtdetr_v2_tiny"), ("maskrcnn", "maskrcnn_resnet18_fpn")]


def make_data(root: Path, images: int, size: int, seed: int) -> Path:
    from cvatflow.datasets.synth import make_export

    archive = make_export(root / "export.zip", images=images, seed=seed, size=size)
    with zipfile.ZipFile(archive) as z:
        z.extractall(root / "data")
    return root / "data"


REPLAN_AT = 10  # real training steps timed before the LR schedule is laid over the budget again
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def seconds_per_step(trainer, steps: int = 3, clock=time.perf_counter) -> float:
    """Median seconds of a training step (forward, backward, optimizer) on the trainer's own batches; the
    weights it changes are put back, so calibration does not train the model."""
    import copy

    import torch

    state = copy.deepcopy(trainer.model.state_dict())
    optimizer_state = copy.deepcopy(trainer.optimizer.state_dict())
    trainer.model.train()
    times = []
    batches = (batch for _ in range(steps + 1) for batch in trainer.train_loader)  # small sets: go round
    for i in range(steps + 1):  # the first step warms up allocators and caches
        images, targets = next(batches)
        start = clock()
        loss = trainer.adapter.losses(trainer.model, images, targets, trainer.device)["sum"]
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        if i:
            times.append(clock() - start)
    trainer.model.load_state_dict(state)
    trainer.optimizer.load_state_dict(optimizer_state)
    trainer.optimizer.zero_grad(set_to_none=True)
    torch.manual_seed(trainer.hp.seed)
    return sorted(times)[len(times) // 2]


def gflop_per_step(trainer) -> float:
    """Floating-point operations of one training step (forward and backward, one of the trainer's batches), in
    GFLOP as torch's FlopCounterMode counts them (matmuls and convolutions): the cost that does not depend on how
    loaded the machine is."""
    from torch.utils.flop_counter import FlopCounterMode

    images, targets = next(iter(trainer.train_loader))
    trainer.model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.adapter.losses(trainer.model, images, targets, trainer.device)["sum"].backward()
    trainer.optimizer.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 1e9


def run_one(family: str, variant: str, data: Path, out: Path, budget: float, overrides: dict,
            clock=time.perf_counter) -> dict:
    """Train `variant` for `budget` seconds of `clock` through the harness; its final mAP and what it did."""
    from cvatflow import events
    from cvatflow.training.loop import Run, Setup, Trainer
    from cvatflow.training.setup import schedule

    hp = {"num_workers": 0, "val_every": 10_000, "val_percent": 25.0, **overrides}
    text = "\n".join(f"{k}: {v}" for k, v in hp.items())
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        probe = Trainer(Setup(Run(model=family, data=data, output=out / "probe", hyperparameters=text,
                                  variant=variant, export=False)))
        per_step = seconds_per_step(probe, clock=clock)
        gflop = gflop_per_step(probe)
        steps = max(2, int(budget / per_step))
        trainer = Trainer(Setup(Run(model=family, data=data, output=out / "run", hyperparameters=text +
                                    f"\nmax_steps: {steps}", variant=variant, export=False)))
        losses, started, replanned = trainer.adapter.losses, [], []

        def timed(*args, **kwargs):
            now = clock()
            if not started:
                started.append(now)
            elif not replanned and trainer.step >= REPLAN_AT:
                # The probe's few steps misjudge the speed (a slow first step, a machine whose load changed): lay
                # the LR schedule again over the steps the run's own first REPLAN_AT steps predict for the budget.
                total = max(trainer.step + 1, int(budget * trainer.step / (now - started[0])))
                replanned.append(total)
                trainer.total = total
                trainer.scheduler.lr_lambdas = [schedule(trainer.hp, total) for _ in trainer.scheduler.lr_lambdas]
                if trainer.multiscale is not None:
                    trainer.multiscale.last = int(total * trainer.hp.multi_scale_until)
            if now - started[0] > budget:
                # Stop at the budget: the step that starts past it becomes the last one (then validation runs).
                trainer.total = trainer.step + 1
            return losses(*args, **kwargs)

        trainer.adapter.losses = timed
        trainer.train()
    trained = clock() - started[0]
    val = [e for e in events.parse_lines(buffer.getvalue().splitlines()) if e.get("type") == "val"]
    final = val[-1]["metrics"]
    return {"model": variant, "mAP": final["mAP"], "AP50": final["AP50"], "steps": trainer.step,
            "planned_steps": steps, "replanned_steps": replanned[0] if replanned else None, "s_per_step": round(per_step, 2), "gflop_per_step": round(gflop, 1),
            "train_s": round(trained, 1),
            "image_size": trainer.hp.image_size, "batch_size": trainer.hp.batch_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds per model")
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--size", type=int, default=256, help="synthetic image side (px)")
    parser.add_argument("--image-size", type=int, default=None, help="override every model's image_size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="what the budget counts: wall-clock seconds, or this process's CPU seconds")
    parser.add_argument("--dfine", action="store_true", help="also train the tiny D-FINE")
    parser.add_argument("--models", default=None,
                        help="comma-separated variants to train, a subset of " +
                             ",".join(v for _, v in MODELS + [("rtdetr", "dfine_tiny")]) +
                             " (the goal is checked only when detr_small and rtdetr_v2_tiny both run)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    import torch

    overrides = {"image_size": args.image_size} if args.image_size else {}
    models = MODELS + ([("rtdetr", "dfine_tiny")] if args.dfine else [])
    if args.models:
        wanted = args.models.split(",")
        known = {v: (f, v) for f, v in MODELS + [("rtdetr", "dfine_tiny")]}
        unknown = [v for v in wanted if v not in known]
        if unknown:
            parser.error(f"--models: unknown variant(s) {', '.join(unknown)}; choose from {', '.join(known)}")
        models = [known[v] for v in wanted]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), args.images, args.size, args.seed)
        for family, variant in models:
            result = run_one(family, variant, data, Path(tmp) / variant, args.budget, overrides,
                             CLOCKS[args.clock])
            results.append(result)
            print(json.dumps(result), flush=True)
    print(f"\n{args.budget:.0f} {args.clock} s of training each on {args.images} synthetic {args.size}px images "
          f"(25% validation), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':24} {'mAP':>6} {'AP50':>6} {'steps':>6} {'s/step':>7} {'GFLOP':>6} {'train s':>8} {'px':>4} "
          f"{'batch':>5}")
    for r in results:
        print(f"{r['model']:24} {r['mAP']:6.3f} {r['AP50']:6.3f} {r['steps']:6d} {r['s_per_step']:7.2f} "
              f"{r['gflop_per_step']:6.1f} {r['train_s']:8.1f} {r['image_size']:4d} {r['batch_size']:5d}")
    by_model = {r["model"]: r["mAP"] for r in results}
    if not {"detr_small", "rtdetr_v2_tiny"} <= by_model.keys():
        if args.json:
            args.json.write_text(json.dumps({"budget_s": args.budget, "results": results}, indent=2))
        return 0
    base, tiny = by_model["detr_small"], by_model["rtdetr_v2_tiny"]
    ratio = tiny / base if base > 0 else (float("inf") if tiny > 0 else float("nan"))  # 0 / 0 meets no goal
    from _goal import Goals

    goals = Goals(__file__)
    goals.check("rtdetr_v2_tiny / detr_small mAP in the same budget", ratio, ">=", 3, "x")
    if args.json:
        args.json.write_text(json.dumps({"budget_s": args.budget, "results": results, "ratio": ratio}, indent=2))
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
