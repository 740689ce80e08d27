"""The training process of test_training_ddp.py: run alone (one process) or under torchrun (each rank).

    python tests/training/ddp_worker.py ranks MODELS DATA OUT     (under torchrun: 2 ranks)
    python tests/training/ddp_worker.py resume DATA OUT           (alone, after `ranks`)
    python tests/training/ddp_worker.py kill SIGNAL               (under torchrun: rank 1 kills itself with SIGNAL)
    python tests/training/ddp_worker.py wait DIR                  (under torchrun: touch DIR/rank<r>, then sleep)

ranks:    for each of MODELS (comma-separated), on fixed global batches of 4 images (rank r takes images 2r, 2r+1),
          beside a plain copy of the model that takes all 4 (one process): a harness SGD step (balanced boxes);
          the box-count-normalised loss terms alone (1 object on rank 0's images, 4 on rank 1's; DETR family);
          two harness steps where rank 1's whole batch has no objects. Writes OUT/<model>/rank<r>.pt (flat
          parameters, gradients, loss terms). Then the first half of the resume scenario: the harness trains
          DATA into OUT/split (global batch 4 = 2 ranks x 2) and dies after the step-2 checkpoint (a preempted
          pod). One launch for all: starting torchrun and importing torch is most of a tiny test's time.
resume:   one process: the uninterrupted run (global batch 4 = 2 accumulated micro-batches of 2) into OUT/whole,
          then the resume of OUT/split at world size 1.
"""
from __future__ import annotations

import copy
import os
import signal
import sys
from pathlib import Path

BOXES = {"balanced": [2, 2, 2, 2], "unbalanced": [1, 1, 4, 4], "empty": [2, 2, 0, 0]}
VARIANT = {"detr": "detr_small", "maskrcnn": "maskrcnn_resnet18_fpn", "rtdetr": "rtdetr_v2_tiny",
           "dfine": "dfine_tiny"}
ADAPTER = {"dfine": "rtdetr"}  # D-FINE is a family of the rtdetr adapter
# The final layer's terms the reference criteria divide by the global box count (DETR: facebookresearch/detr
# SetCriterion; RT-DETR/D-FINE: their criteria; D-FINE's loss_fgl is an auxiliary layers' term and its loss_ddf
# a mean over the batch's queries, not among them).
COUNTED = {"detr": ("loss_bbox", "loss_giou"), "rtdetr": ("loss_vfl", "loss_bbox", "loss_giou"),
           "dfine": ("loss_vfl", "loss_bbox", "loss_giou")}


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


def resume_run(data: Path, out: Path, accum: int = 1):
    """The run of the resume scenario: DETR-small, 4 steps of global batch 4 (2 per micro-batch), last.pt every
    2 steps."""
    from cvatflow.training.loop import Run

    hp = (f"batch_size: 2\ngrad_accum: {accum}\nmax_steps: 4\ncheckpoint_every: 2\nval_every: 100\n"
          f"num_workers: 0\nimage_size: 64\nwarmup_steps: 1\nhflip: 0.5\n")
    return Run(model="detr", data=data, output=out, hyperparameters=hp, variant="detr_small", pretrained=False,
               export=False, device="cpu")


def trainer(model: str, data: Path, out: Path, hp: str):
    from cvatflow.training.loop import Run, Setup, Trainer

    return Trainer(Setup(Run(model=ADAPTER.get(model, model), data=data, output=out, hyperparameters=hp, variant=VARIANT[model],
                             pretrained=False, export=False, device="cpu")))


def flat(tensors):
    import torch

    return torch.cat([t.detach().reshape(-1).float() for t in tensors])


def comparable(model: str):
    """Until the returned function is called, make `model`'s adapter build models without their random and batch-dependent parts, so that 2 ranks of 2
    images can equal 1 process of 4: every anchor and proposal sampled (Mask R-CNN), no denoising queries
    (RT-DETR/D-FINE draw their noise and group count per batch), BatchNorm on its running statistics (batch
    statistics over 2 images differ from those over 4). Mask R-CNN keeps only its 32 best proposals per image
    (the test's time is mostly RoI heads on every proposal)."""
    import torch

    from cvatflow.models import get_adapter

    adapter = type(get_adapter(ADAPTER.get(model, model)))
    build = adapter.build

    def built(self, settings, num_classes, pretrained):
        net = build(self, settings, num_classes, pretrained)
        if hasattr(net, "rpn"):
            net.rpn.fg_bg_sampler.batch_size_per_image = 10**6
            net.roi_heads.fg_bg_sampler.batch_size_per_image = 10**6
            net.rpn._pre_nms_top_n["training"], net.rpn._post_nms_top_n["training"] = 64, 32  # fewer RoIs: faster
        if model in ("rtdetr", "dfine"):
            net.config.num_denoising = 0  # and without the label embedding only denoising uses
            net.model.denoising_class_embed = None
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
                m.train = lambda mode=True, m=m: m  # stays in eval when the harness calls model.train()
        return net

    adapter.build = built
    return lambda: setattr(adapter, "build", build)


def steps(model: str, data: Path, out: Path, rank: int, world: int) -> None:
    """The `ranks` scenario of one model; writes out/rank<rank>.pt."""
    import torch

    restore = comparable(model)
    per_rank = 4 // world
    hp = (f"batch_size: {per_rank}\nnum_workers: 0\nimage_size: 64\nwarmup_steps: 0\ngrad_clip: 0\nlr: 0.01\n"
          f"optimizer: sgd\nmomentum: 0\nweight_decay: 0\nema_decay: 0\nbackbone_lr: 0.01\n")
    t = trainer(model, data, out / "run", hp)
    restore()
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
    # DETR family: the whole batch at once (the box count is shared across ranks); Mask R-CNN's losses are means
    # over each batch's sampled anchors and RoIs, as in torchvision's reference trainer under DDP, so its
    # one-process equal is the same 4 images as two accumulated micro-batches of 2
    parts = [slice(0, 2), slice(2, 4)] if model == "maskrcnn" else [slice(0, 4)]
    for part in parts:
        (t.adapter.losses(ref, images[part], targets[part], t.device)["sum"] / len(parts)).backward()
    result["step"] = {"params": params(t.model), "grads": grads(t.model), "ref_grads": grads(ref),
                      "ref_params": before - lr * grads(ref)}
    # 2. the box-count terms alone on unbalanced boxes, through the harness's normalisation (0 x the rest keeps
    # every parameter in the graph); RT-DETR's whole loss is such terms (its auxiliary layers' too)
    if model in COUNTED:
        images, targets = batch(BOXES["unbalanced"], t.adapter.masks)
        ref.load_state_dict(t.model.state_dict())
        micro = [(images[mine], targets[mine])]
        t.optimizer.zero_grad(set_to_none=True)
        num_boxes = t._mean_boxes(micro)
        kwargs = {"num_boxes": num_boxes} if num_boxes is not None else {}
        losses = t.adapter.losses(t.net, micro[0][0], micro[0][1], t.device, **kwargs)
        terms = ("sum",) if model == "rtdetr" else COUNTED[model]
        (sum(losses[k] for k in terms) + 0 * losses["sum"]).backward()
        ref.zero_grad()
        plain = t.adapter.losses(ref, images, targets, t.device)
        sum(plain[k] for k in terms).backward()
        keys = (*COUNTED[model], "sum")
        result["boxes"] = {"grads": grads(t.model), "ref_grads": grads(ref),
                           "losses": {k: float(losses[k]) for k in keys},
                           "ref_losses": {k: float(plain[k]) for k in keys}}
    # 3. rank 1's whole batch has no objects: two more steps
    images, targets = batch(BOXES["empty"], t.adapter.masks)
    for _ in range(2):
        t.train_step([(images[mine], targets[mine])])
    result["empty"] = {"params": params(t.model)}
    (out / "run").mkdir(parents=True, exist_ok=True)
    torch.save(result, out / f"rank{rank}.pt")


def train_until(data: Path, out: Path, stop: int) -> None:
    """The harness's run of the resume scenario, dying after the step-`stop` checkpoint (a preempted pod)."""
    from cvatflow.training import loop

    save = loop.Trainer._save_last

    def save_then_die(self):
        save(self)
        if self.step == stop:
            raise SystemExit(0)  # train() leaves the process group on the way out

    loop.Trainer._save_last = save_then_die
    try:
        loop.train(resume_run(data, out))
    except SystemExit:
        pass
    loop.Trainer._save_last = save


def main() -> None:
    scenario = sys.argv[1]
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if scenario == "kill":
        import torch.distributed as dist

        dist.init_process_group("gloo")
        dist.barrier()  # both ranks are up and talking; then rank 1 dies as the OOM killer or a preemption does
        if rank == 1:
            os.kill(os.getpid(), getattr(signal, sys.argv[2]))
        dist.barrier()  # rank 0 waits for a rank that never comes; torchrun stops it
        return
    if scenario == "wait":  # each rank says it is up, then trains forever (until the launcher is stopped)
        Path(sys.argv[2], f"rank{rank}").touch()
        import time

        time.sleep(120)
        return
    if scenario == "resume":
        from cvatflow.training.loop import train

        data, out = Path(sys.argv[2]), Path(sys.argv[3])
        train(resume_run(data, out / "whole", accum=2))
        train(resume_run(data, out / "split"))
        return
    models, data, out = sys.argv[2].split(","), Path(sys.argv[3]), Path(sys.argv[4])
    for model in models:
        steps(model, data, out / model, rank, world)
    train_until(data, out / "split", 2)


if __name__ == "__main__":
    main()
