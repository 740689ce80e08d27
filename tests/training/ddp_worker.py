"""The training process of test_training_ddp.py: run alone (one process) or under torchrun (each rank).

    python tests/training/ddp_worker.py SCENARIO MODEL DATA OUT [grad_accum]

steps:    on fixed global batches of 4 images (rank r takes images 2r, 2r+1), beside a plain copy of the model
          that takes all 4 (one process): a harness SGD step (balanced boxes); the gradient of the box terms
          alone (1 object on rank 0's images, 4 on rank 1's; DETR); two harness steps where rank 1's whole
          batch has no objects. Writes OUT/rank<r>.pt (flat parameters, gradients, loss terms).
resume:   trains DATA with the harness into OUT (global batch 4), dying after the step-2 checkpoint when
          STOP=2 is in the environment (a preempted pod).
"""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

BOXES = {"balanced": [2, 2, 2, 2], "unbalanced": [1, 1, 4, 4], "empty": [2, 2, 0, 0]}


def batch(counts: list[int], masks: bool, size: int = 64):
    """Four fixed images [3, size, size] uint8 and targets with `counts[i]` boxes each (same on every rank)."""
    import torch

    g = torch.Generator().manual_seed(7)
    images, targets = [], []
    for i, n in enumerate(counts):
        images.append(torch.randint(0, 255, (3, size, size), generator=g, dtype=torch.uint8))
        xy = torch.randint(0, size // 2, (n, 2), generator=g).float()
        wh = torch.randint(8, size // 2, (n, 2), generator=g).float()
        boxes = torch.cat([xy, (xy + wh).clamp(max=size)], dim=1)
        target = {"boxes": boxes, "labels": torch.randint(0, 2, (n,), generator=g), "image_id": i,
                  "scale": (1.0, 1.0), "orig_size": (size, size)}
        if masks:
            m = torch.zeros((n, size, size), dtype=torch.uint8)
            for k, (x0, y0, x1, y1) in enumerate(boxes.round().int().tolist()):
                m[k, y0:y1, x0:x1] = 1
            target["masks"] = m
        targets.append(target)
    return images, targets


def resume_run(model: str, data: Path, out: Path, accum: int = 1):
    """The run of the resume scenario: 4 steps of global batch 4 (2 per micro-batch), last.pt every 2 steps."""
    from cvatflow.training.loop import Run

    hp = (f"batch_size: 2\ngrad_accum: {accum}\nmax_steps: 4\ncheckpoint_every: 2\nval_every: 100\n"
          f"num_workers: 0\nimage_size: 64\nwarmup_steps: 1\nhflip: 0.5\n")
    return Run(model=model, data=data, output=out, hyperparameters=hp,
               variant="detr_small" if model == "detr" else "maskrcnn_resnet18_fpn", pretrained=False,
               export=False, device="cpu")


def trainer(model: str, data: Path, out: Path, hp: str):
    from cvatflow.training.loop import Run, Setup, Trainer

    variant = {"detr": "detr_small", "maskrcnn": "maskrcnn_resnet18_fpn"}[model]
    return Trainer(Setup(Run(model=model, data=data, output=out, hyperparameters=hp, variant=variant,
                             pretrained=False, export=False, device="cpu")))


def flat(tensors):
    import torch

    return torch.cat([t.detach().reshape(-1).float() for t in tensors])


def comparable(t) -> None:
    """Mask R-CNN without its random parts: every anchor and proposal sampled (not a random subset), BatchNorm
    on its running statistics (batch statistics over 2 images differ from those over 4)."""
    import torch

    model = t.model
    if hasattr(model, "rpn"):
        model.rpn.fg_bg_sampler.batch_size_per_image = 10**6
        model.roi_heads.fg_bg_sampler.batch_size_per_image = 10**6
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()


def main() -> None:
    import torch
    import torch.distributed as dist

    scenario, model, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    out.mkdir(parents=True, exist_ok=True)
    if scenario == "resume":
        from cvatflow.training import loop

        accum = int(sys.argv[5]) if len(sys.argv) > 5 else 1
        stop = int(os.environ.get("STOP", "0"))
        if stop:
            save = loop.Trainer._save_last

            def save_then_die(self):
                save(self)
                if self.step == stop:
                    loop.distributed.leave()
                    sys.exit(0)

            loop.Trainer._save_last = save_then_die
        loop.train(resume_run(model, data, out, accum))
        return
    per_rank = 4 // world
    hp = (f"batch_size: {per_rank}\nnum_workers: 0\nimage_size: 64\nwarmup_steps: 0\ngrad_clip: 0\nlr: 0.01\n"
          f"optimizer: sgd\nmomentum: 0\nweight_decay: 0\n")
    t = trainer(model, data, out / "run", hp)
    comparable(t)
    ref = copy.deepcopy(t.model)  # one process on the whole global batch, for comparison
    lr = t.optimizer.param_groups[0]["lr"]
    mine = slice(rank * per_rank, (rank + 1) * per_rank)
    result: dict = {}

    def params(m):
        return flat([p for p in m.parameters() if p.requires_grad])

    def grads(m):
        return flat([p.grad if p.grad is not None else torch.zeros_like(p) for p in m.parameters() if p.requires_grad])

    # 1. one harness step on a balanced global batch
    images, targets = batch(BOXES["balanced"], t.adapter.masks)
    before = params(t.model)
    t.train_step([(images[mine], targets[mine])])
    ref.zero_grad()
    # DETR: the whole batch at once (the box count is shared across ranks); Mask R-CNN's losses are means over
    # each batch's sampled anchors and RoIs, as in torchvision's reference trainer under DDP, so its one-process
    # equal is the same 4 images as two accumulated micro-batches of 2
    parts = [slice(0, 4)] if t.adapter.global_box_norm else [slice(0, 2), slice(2, 4)]
    for part in parts:
        (t.adapter.losses(ref, images[part], targets[part], t.device)["sum"] / len(parts)).backward()
    result["step"] = {"params": params(t.model), "grads": grads(t.model), "ref_grads": grads(ref),
                      "ref_params": before - lr * grads(ref)}
    # 2. the box terms alone on unbalanced boxes, through the harness's normalisation (0 x the rest keeps every
    # parameter in the graph)
    if t.adapter.global_box_norm:
        images, targets = batch(BOXES["unbalanced"], t.adapter.masks)
        ref.load_state_dict(t.model.state_dict())
        micro = [(images[mine], targets[mine])]
        t.optimizer.zero_grad(set_to_none=True)
        num_boxes = t._mean_boxes(micro)
        kwargs = {"num_boxes": num_boxes} if num_boxes is not None else {}
        losses = t.adapter.losses(t.net, micro[0][0], micro[0][1], t.device, **kwargs)
        (losses["loss_bbox"] + losses["loss_giou"] + 0 * losses["sum"]).backward()
        ref.zero_grad()
        plain = t.adapter.losses(ref, images, targets, t.device)
        (plain["loss_bbox"] + plain["loss_giou"]).backward()
        result["boxes"] = {"grads": grads(t.model), "ref_grads": grads(ref),
                           "losses": {k: float(losses[k]) for k in ("loss_bbox", "loss_giou")},
                           "ref_losses": {k: float(plain[k]) for k in ("loss_bbox", "loss_giou")}}
    # 3. rank 1's whole batch has no objects: two more steps
    images, targets = batch(BOXES["empty"], t.adapter.masks)
    for _ in range(2):
        t.train_step([(images[mine], targets[mine])])
    result["empty"] = {"params": params(t.model)}
    torch.save(result, out / f"rank{rank}.pt")
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
