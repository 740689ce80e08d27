"""Benchmark: NoC@85/90 and mIoU@k of the trained tiny Smart Tool model vs an untrained baseline, same clicks."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _goal import Goals, quick

PIPELINE = [
    {"action": "class_mapping", "mapping": {"__other__": "obj"}},
    {"action": "instances_crop", "pad": {"left": 100, "right": 100, "top": 100, "bottom": 100}},
    {"action": "split_tags", "val_probability": 0.2, "seed": 0},
    {"action": "flip", "axis": "vertical"},
    {"action": "resize", "width": 64, "height": 64},
]


def curves(samples, predict_for, max_clicks: int) -> list[list[float]]:
    """IoU curves over the validation samples' objects; `predict_for(image)` gives a clicks -> mask function."""
    from cvatflow.models.interactive_clicks import click_ious

    return [click_ious(predict_for(s.image), o["mask"], max_clicks) for s in samples for o in s.objects]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=12 if quick() else 40)
    parser.add_argument("--steps", type=int, default=30 if quick() else 300)
    parser.add_argument("--max-clicks", type=int, default=20)
    args = parser.parse_args()

    from cvatflow.datasets import transform as tf
    from cvatflow.datasets.synth import make_export
    from cvatflow.models import interactive
    from cvatflow.models.interactive_clicks import grow_from_clicks, summarize
    from cvatflow.training.loop import Run, train
    from cvatflow.training.state import ModelState

    work = Path(tempfile.mkdtemp(prefix="bench-noc-"))
    export = make_export(work / "shapes.zip", images=args.images, seed=0, size=128)
    tf.transform(export, work / "data", tf.parse(PIPELINE))
    started = time.perf_counter()
    hp = f"{{image_size: 64, num_workers: 0, batch_size: 8, max_steps: {args.steps}, val_every: 1000}}"
    interactive.TINY_VAL_OBJECTS = 10  # the harness's own validation: a few objects (the figures below use all)
    train(Run(model="interactive", data=work / "data", output=work / "out", variant="click_tiny",
              hyperparameters=hp, pretrained=False, device="cpu", export=False))
    seconds = time.perf_counter() - started
    model = ModelState.read(work / "out").build("cpu")
    val = [s for s in tf.read_samples(work / "data") if "val" in s.tags]
    trained = summarize(curves(val, lambda image: lambda clicks: interactive.segment(model, image, clicks) > 0.5,
                               args.max_clicks), args.max_clicks)
    baseline = summarize(curves(val, lambda image: lambda clicks: grow_from_clicks(image, clicks),
                                args.max_clicks), args.max_clicks)
    print(f"{len(val)} validation objects (64x64 crops of the synthetic shapes), {args.steps} steps of click_tiny "
          f"on CPU in {seconds:.0f} s; clicks placed on the largest error, at most {args.max_clicks}")
    print(f"{'metric':8} {'trained':>9} {'baseline':>9}   (baseline: colour region grown from the clicks)")
    for key in ("NoC@85", "NoC@90", "mIoU@1", "mIoU@3", "mIoU@5", "NoF@90"):
        print(f"{key:8} {trained[key]:9.3f} {baseline[key]:9.3f}")
    goals = Goals(__file__)
    goals.note("baseline NoC@85", baseline["NoC@85"], " clicks")
    goals.check("trained NoC@85", trained["NoC@85"], "<", baseline["NoC@85"], " clicks")
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
