"""Benchmark (GPU): training images/s per GPU, bf16, synthetic COCO-sized images, for DETR-R50 and Mask R-CNN
R50-FPN v1 and v2 at batch 2/4/8, beside published per-GPU figures. Random weights (nothing is downloaded).

    python bench/gpu_throughput.py            # about 3 minutes on one H100/H200-class GPU
    python bench/gpu_throughput.py --quick    # fewer steps, a smoke test (also runs on CPU with --device cpu)
"""
from __future__ import annotations

import argparse
import sys
import time

# Published training throughput per GPU (images/s), ../shared/research/distributed_training.md §5; COCO
# train2017 has about 118k images.
ANCHORS = {
    "DETR-R50": "V100 ~8.8 fp32 (detr README: 28 min/epoch on 8 V100, 2 images/GPU)",
    "Mask R-CNN R50-FPN v1": "V100 7.8 (detectron2 benchmarks, 8 GPUs); V100 9.3 fp32 / 12.7 AMP (NVIDIA "
                             "DeepLearningExamples, 1 GPU, bs 4); A100-40GB 20.7 (FlagPerf, 8 GPUs fp32), "
                             "23.6 (1 GPU, bs 16)",
    "Mask R-CNN R50-FPN v2": "none published; 333.6 vs 134.4 GFLOPs of v1 (torchvision weight meta): expect "
                             "about half of v1",
}
HEIGHT, WIDTH = 800, 1088  # COCO's training scale: shorter side 800, a typical 4:3 image's longer side
OBJECTS = 7  # COCO's mean objects per image is about 7.3


def synthetic(batch: int, masks: bool, device, seed: int = 0):
    """`batch` random uint8 images [3, 800, 1088] and targets of OBJECTS random boxes (with box masks)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(batch):
        images.append(torch.randint(0, 255, (3, HEIGHT, WIDTH), generator=g, dtype=torch.uint8))
        xy = torch.rand((OBJECTS, 2), generator=g) * torch.tensor([WIDTH * 0.7, HEIGHT * 0.7])
        wh = 32 + torch.rand((OBJECTS, 2), generator=g) * torch.tensor([WIDTH * 0.3, HEIGHT * 0.3])
        boxes = torch.cat([xy, xy + wh], dim=1)
        target = {"boxes": boxes, "labels": torch.randint(0, 80, (OBJECTS,), generator=g)}
        if masks:
            m = torch.zeros((OBJECTS, HEIGHT, WIDTH), dtype=torch.uint8)
            for k, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
                m[k, y0:y1, x0:x1] = 1
            target["masks"] = m
        targets.append(target)
    return images, targets


def build(name: str):
    """(adapter, model) with random weights for 80 classes."""
    from cvatflow.models import get_adapter

    if name == "DETR-R50":
        adapter = get_adapter("detr")
        settings = adapter.settings("detr_resnet50", HEIGHT)
    else:
        adapter = get_adapter("maskrcnn")
        settings = adapter.settings("maskrcnn_resnet50_fpn" + ("_v2" if name.endswith("v2") else ""), HEIGHT)
    return adapter, adapter.build(settings, 80, pretrained=False)


def images_per_s(name: str, batch: int, steps: int, warmup: int, device) -> float:
    """Training images/s of one model at one batch size: the harness's loss, AdamW, bf16 autocast."""
    import torch

    adapter, model = build(name)
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    images, targets = synthetic(batch, adapter.masks, device)
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = adapter.losses(model, images, targets, device)["sum"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", default="2,4,8")
    parser.add_argument("--models", default=",".join(ANCHORS))
    parser.add_argument("--device", default=None, help="default: cuda; cpu only for a smoke test")
    parser.add_argument("--quick", action="store_true", help="2 timed steps after 1 warm-up")
    args = parser.parse_args()

    import torch

    if args.device is None and not torch.cuda.is_available():
        print("no GPU on this machine: nothing measured (run this on a GPU node; --device cpu for a smoke test)")
        return
    device = torch.device(args.device or "cuda")
    if args.quick:
        args.steps, args.warmup = 2, 1
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"training images/s per device on {gpu}, bf16 autocast, synthetic {HEIGHT}x{WIDTH} images with "
          f"{OBJECTS} objects, random weights, {args.steps} timed steps after {args.warmup} warm-up")
    print(f"{'model':<24}{'batch':>6}{'images/s':>10}  published per-GPU figure")
    for name in args.models.split(","):
        for b in (int(x) for x in args.batches.split(",")):
            try:
                value = f"{images_per_s(name, b, args.steps, args.warmup, device):10.1f}"
            except torch.OutOfMemoryError:
                value = f"{'OOM':>10}"
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            print(f"{name:<24}{b:>6}{value}  {ANCHORS[name] if b == 2 else ''}", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
