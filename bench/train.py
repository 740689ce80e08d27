"""Benchmark: harness images/s vs a bare PyTorch loop (same model and data), our loader vs CocoDetection+PIL."""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from _goal import Goals


def make_data(root: Path, images: int, size: int) -> Path:
    from cvatflow.datasets.synth import make_export

    archive = make_export(root / "export.zip", images=images, seed=0, size=size)
    with zipfile.ZipFile(archive) as z:
        z.extractall(root / "data")
    return root / "data"


def harness_images_per_s(data: Path, out: Path, hp: str, variant: str) -> float:
    """Images/s of the harness's training loop (events, TensorBoard, LR schedule, clipping all on)."""
    from cvatflow import events
    from cvatflow.training.loop import Run, Setup, Trainer

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        trainer = Trainer(Setup(Run(model=variant.split("_")[0], data=data, output=out, hyperparameters=hp,
                                    variant=variant, export=False)))
        trainer.train()
    train = [e for e in events.parse_lines(buffer.getvalue().splitlines()) if e.get("type") == "train"]
    return train[-1]["metrics"]["images_per_s"]


def bare_images_per_s(data: Path, hp_text: str, variant: str) -> float:
    """The same model, data, batches and optimizer in the plainest loop PyTorch allows."""
    import torch

    from cvatflow.models import get_adapter
    from cvatflow.training import data as datalib
    from cvatflow.training.hyperparameters import parse

    adapter = get_adapter(variant.split("_")[0])
    hp = parse(hp_text, adapter.default_hyperparameters(variant))
    coco = datalib.load(data, hp.val_percent, hp.seed)
    torch.manual_seed(hp.seed)
    model = adapter.build(adapter.settings(variant, hp.image_size), len(coco.class_titles), False)
    model.train()
    dataset = datalib.DetectionDataset(coco, coco.train_ids, hp.image_size, adapter.masks, hp.hflip)
    loader = torch.utils.data.DataLoader(dataset, batch_size=hp.batch_size, shuffle=True,
                                         num_workers=hp.num_workers, collate_fn=datalib.collate,
                                         persistent_workers=hp.num_workers > 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    steps, seen, start = 0, 0, time.perf_counter()
    while steps < hp.max_steps:
        for images, targets in loader:
            loss = adapter.losses(model, images, targets, torch.device("cpu"))["sum"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps, seen = steps + 1, seen + len(images)
            if steps == hp.max_steps:
                break
    return seen / (time.perf_counter() - start)


def references_dataset(data: Path):
    """torchvision references style: CocoDetection (PIL) + ConvertCocoPolysToMask + PILToTensor + float."""
    import torch
    from pycocotools import mask as mask_utils
    from torchvision.datasets import CocoDetection
    from torchvision.transforms import functional as F

    class ConvertCocoPolysToMask:
        def __call__(self, image, anns):
            w, h = image.size
            anns = [a for a in anns if a.get("iscrowd", 0) == 0]
            boxes = torch.as_tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
            boxes[:, 2:] += boxes[:, :2]
            masks = []
            for a in anns:
                rles = mask_utils.frPyObjects(a["segmentation"], h, w)
                m = mask_utils.decode(rles)
                masks.append(torch.as_tensor(m.any(axis=2) if m.ndim == 3 else m, dtype=torch.uint8))
            masks = torch.stack(masks) if masks else torch.zeros((0, h, w), dtype=torch.uint8)
            labels = torch.tensor([a["category_id"] for a in anns], dtype=torch.int64)
            return image, {"boxes": boxes, "labels": labels, "masks": masks}

    class Dataset(CocoDetection):
        def __getitem__(self, index):
            image, anns = super().__getitem__(index)
            image, target = ConvertCocoPolysToMask()(image, anns)
            return F.convert_image_dtype(F.pil_to_tensor(image), torch.float), target

    with contextlib.redirect_stdout(io.StringIO()):
        return Dataset(str(data / "images"), str(data / "annotations" / "instances_default.json"))


def loader_images_per_s(dataset, workers: int, batch: int = 8, rounds: int = 2) -> float:
    import torch

    from cvatflow.training.data import collate

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collate)
    best = 0.0
    for _ in range(rounds):
        start, seen = time.perf_counter(), 0
        for images, _ in loader:
            seen += len(images)
        best = max(best, seen / (time.perf_counter() - start))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--model", default="detr_small")
    parser.add_argument("--loader-size", type=int, default=800, help="image side for the loader comparison")
    parser.add_argument("--loader-only", action="store_true", help="only the data loader comparison")
    args = parser.parse_args()
    goals = Goals(__file__)

    import torch

    from cvatflow.training import data as datalib

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_data(root, args.images, 128)
        hp = (f"max_steps: {args.steps}\nbatch_size: 8\nimage_size: 128\nval_every: 1000\nnum_workers: 1\n"
              f"hflip: 0.5\nval_percent: 10\n")
        # alternate the two loops and keep each one's best, so that a noisy neighbour hurts both alike
        harness, bare = 0.0, 0.0
        for round_ in range(0 if args.loader_only else 3):
            bare = max(bare, bare_images_per_s(data, hp, args.model))
            harness = max(harness, harness_images_per_s(data, root / f"out{round_}", hp, args.model))
        if not args.loader_only:
            print(f"training loop ({args.model}, 128px, batch 8, {args.steps} steps, {torch.get_num_threads()} "
                  f"threads):")
            print(f"  bare PyTorch loop {bare:.1f} images/s, harness {harness:.1f} images/s")
            goals.check(f"harness / bare PyTorch loop images/s ({args.model})", harness / bare, ">=", 0.95)

        big = make_data(root / "big", 32, args.loader_size)
        coco = datalib.load(big)
        ours = datalib.DetectionDataset(coco, sorted(coco.paths), args.loader_size, masks=True)
        half = datalib.DetectionDataset(coco, sorted(coco.paths), args.loader_size // 2, masks=True)
        theirs = references_dataset(big)
        for workers in (0, 2):
            t = loader_images_per_s(theirs, workers)
            o = loader_images_per_s(ours, workers)
            h = loader_images_per_s(half, workers)
            print(f"data loader ({args.loader_size}px JPEGs with polygon masks, {workers} workers):")
            print(f"  CocoDetection+PIL {t:.1f} images/s; ours at full size {o:.1f} images/s: ratio {o / t:.2f}; "
                  f"ours resizing to {args.loader_size // 2}px {h:.1f} images/s")
            goals.check(f"loader resizing to {args.loader_size // 2}px / CocoDetection+PIL, {workers} workers",
                        h / t, ">=", 2, "x")
    sys.stdout.flush()
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
