"""The training loop with validation: optimizer steps over global batches, AMP, clipping, checkpoints, resume, events.

Read top to bottom: `train()` checks the inputs (training/setup.py), builds a Trainer (model, data, optimizer,
process group), runs its loop, and writes the outputs (training/outputs.py). One process is the plain case of
many: under torchrun each rank trains on its share of every global batch and rank 0 alone writes.
"""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

from cvatflow import events
from cvatflow.datasets.stats import COCO_MAX_DETS
from cvatflow.errors import TrainingError
from cvatflow.training import data as datalib
from cvatflow.training import distributed, outputs
from cvatflow.training.checkpoints import Checkpoints
from cvatflow.training.ema import ModelEma
from cvatflow.training.multiscale import MultiScale, rescale
from cvatflow.training.preemption import EXIT_CODE as PREEMPTED_EXIT
from cvatflow.training.preemption import Preemption
from cvatflow.training.sampler import GlobalBatchSampler, ShardSampler, fit_accumulation
from cvatflow.training.setup import (  # noqa: F401 - public names of cvatflow.training.loop
    DETERMINISTIC_THREADS,
    Run,
    Setup,
    amp_dtype,
    build_model,
    fit_to_data,
    log,
    make_deterministic,
    pick_device,
    schedule,
)

# A preempted pod loses at most this much work to epoch-end saves (checkpoint_every sets a step interval).
EPOCH_CHECKPOINT_SECONDS = 60.0


class NullWriter:
    """TensorBoard on ranks other than 0: nothing is written."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


class Trainer:
    """One training run over a Setup; writes everything into `run.output` (from rank 0)."""

    def __init__(self, setup: Setup):
        import torch

        self.setup, self.run, self.hp, self.adapter = setup, setup.run, setup.hp, setup.adapter
        self.output = Path(self.run.output)
        self.world = distributed.launched()
        self.device = pick_device(self.run.device, self.world.local_rank if self.world.distributed else None)
        distributed.join(self.world, self.device, self.hp.dist_timeout)
        self.amp = amp_dtype(self.hp.amp, self.device)
        if self.hp.deterministic:
            make_deterministic()
        random.seed(self.hp.seed)
        torch.manual_seed(self.hp.seed)
        self.model = build_model(setup, self.device)
        self.accum = self._accumulation(setup.resume)
        self.global_batch = self.hp.batch_size * self.world.size * self.accum
        data = setup.data
        pin = self.device.type == "cuda"
        self.train_set = datalib.DetectionDataset(data, data.train_ids, self.hp.image_size, self.adapter.masks,
                                                  self.hp.hflip, self.hp.seed)
        self.val_set = datalib.DetectionDataset(data, data.val_ids, self.hp.image_size, self.adapter.masks)
        self.sampler = GlobalBatchSampler(len(self.train_set), self.hp.batch_size, self.hp.seed, True,
                                          self.world.size, self.world.rank, self.accum)
        self.train_loader = datalib.loader(self.train_set, self.hp.batch_size, self.hp.num_workers, self.hp.seed,
                                           True, pin, sampler=self.sampler)
        # each rank predicts every world-th validation image; rank 0 evaluates them all, each once
        val_sampler = ShardSampler(len(self.val_set), self.hp.val_batch_size or self.hp.batch_size,
                                   self.world.size, self.world.rank)
        self.val_loader = datalib.loader(self.val_set, self.hp.val_batch_size or self.hp.batch_size,
                                         self.hp.num_workers, self.hp.seed, False, pin, sampler=val_sampler)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total = self.hp.epochs * self.steps_per_epoch
        if self.hp.max_steps:
            self.total = min(self.total, self.hp.max_steps)
        self.val_steps = max(1, round(self.hp.val_every * self.steps_per_epoch))
        self.multiscale = (MultiScale(self.hp.image_size, self.total, self.hp.multi_scale_until, self.hp.seed)
                           if self.hp.multi_scale else None)
        self.model = self._sync_batchnorm(self.model)
        lr, backbone_lr = self._learning_rates()
        groups = self.adapter.param_groups(self.model, lr, backbone_lr)
        groups = [g for g in groups if g["params"]]
        if self.hp.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(groups, momentum=self.hp.momentum, weight_decay=self.hp.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(groups, weight_decay=self.hp.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule(self.hp, self.total))
        self.scaler = torch.amp.GradScaler(enabled=self.amp == torch.float16)
        # the averaged weights are what is validated, kept as best and exported (RT-DETR/D-FINE solvers do so)
        self.ema = ModelEma(self.model, self.hp.ema_decay, self.hp.ema_warmup_steps) if self.hp.ema_decay else None
        self.checkpoints = Checkpoints(self.output, self.hp.keep_checkpoints)
        self.step, self.best, self.history, self.best_step = 0, -1.0, [], None
        self.gt = None
        if setup.resume is not None:
            self._restore(setup.resume)
        self.net = self._wrap(self.model)  # what the loss runs through: DDP under torchrun, else the model

    # -- many processes: batch split, learning rate, BatchNorm, DDP ------------------------------------------
    def _accumulation(self, resume: dict[str, Any] | None) -> int:
        """`grad_accum`, or on a resume at another world size, what keeps the checkpoint's global batch."""
        accum = self.hp.grad_accum
        saved = (resume or {}).get("global_batch")
        if saved and saved != self.hp.batch_size * self.world.size * accum:
            accum = fit_accumulation(saved, self.hp.batch_size, self.world.size)
            log(f"resume: global batch {saved} kept at {self.world.size} process(es) × batch_size "
                f"{self.hp.batch_size} × grad_accum {accum} (last.pt: {resume.get('world_size')} × "
                f"{resume.get('batch_size')} × {resume.get('grad_accum')})")
        if self.world.distributed or accum > 1:
            log(f"global batch {self.hp.batch_size * self.world.size * accum} = batch_size {self.hp.batch_size} × "
                f"{self.world.size} process(es) × grad_accum {accum}")
        return accum

    def _learning_rates(self) -> tuple[float, float]:
        """lr and backbone lr; `lr_scaling: linear` multiplies both by processes × accumulation (logged)."""
        lr = self.hp.lr
        backbone = self.hp.backbone_lr if self.hp.backbone_lr is not None else self.hp.lr
        factor = self.world.size * self.accum if self.hp.lr_scaling == "linear" else 1
        if factor != 1:
            log(f"lr_scaling linear: lr {lr:g} -> {lr * factor:g}, backbone lr {backbone:g} -> "
                f"{backbone * factor:g} (global batch {self.global_batch} = {factor} × batch_size)")
        return lr * factor, backbone * factor

    def _sync_batchnorm(self, model):
        """SyncBatchNorm (`sync_bn`): auto converts on several GPUs when the model trains BatchNorm layers (tiny
        per-GPU batches give noisy statistics). It cannot run on CPUs: `on` there is an error."""
        import torch

        if not self.world.distributed or self.hp.sync_bn == "off":
            return model
        trainable = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and
                        any(p.requires_grad for p in m.parameters(recurse=False)) for m in model.modules())
        if self.device.type != "cuda":
            if self.hp.sync_bn == "on":
                raise TrainingError("hyperparameters: sync_bn: on needs GPUs (SyncBatchNorm does not run on "
                                    "CPUs); use sync_bn: auto or off")
            return model
        if not trainable:
            log("sync_bn: the model has no trainable BatchNorm; nothing to synchronise")
            return model
        log(f"sync_bn {self.hp.sync_bn}: BatchNorm statistics over all {self.world.size} GPUs")
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def _wrap(self, model):
        """DistributedDataParallel under torchrun. find_unused_parameters comes from the adapter or, when it does
        not say, from one probing backward: a parameter outside the loss would leave DDP waiting (or the ranks'
        weights apart)."""
        if not self.world.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        unused = self.adapter.find_unused_parameters
        if unused is None:
            unused = self._probe_unused(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)

    def _probe_unused(self, model) -> bool:
        """One forward and backward on a training batch (RNG state kept) to see whether every trainable
        parameter gets a gradient, agreed over ranks."""
        import torch

        images, targets = datalib.collate([self.train_set[i] for i in range(min(len(self.train_set),
                                                                                 self.hp.batch_size))])
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            self.adapter.losses(model, images, targets, self.device)["sum"].backward()
        missing = sum(1 for p in model.parameters() if p.requires_grad and p.grad is None)
        model.zero_grad(set_to_none=True)
        flag = distributed.sum_all(self.world, torch.tensor([float(missing)]))
        unused = bool(flag.item() > 0)
        log(f"find_unused_parameters {unused} (probed: {missing} parameter(s) without a gradient on rank 0)")
        return unused

    # -- state -------------------------------------------------------------------------------------------
    def payload(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "step": self.step,
                "best": self.best, "best_step": self.best_step, "history": self.history,
                "settings": self.setup.settings, "classes": self.setup.data.class_titles,
                "hyperparameters": self.hp.to_dict(), "split": self.setup.data.split,
                "world_size": self.world.size, "batch_size": self.hp.batch_size, "grad_accum": self.accum,
                "global_batch": self.global_batch, **({"ema": self.ema.state_dict()} if self.ema else {})}

    def _restore(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        if self.ema and "ema" in payload:
            self.ema.load_state_dict(payload["ema"])
        self.step, self.best, self.best_step = payload["step"], payload["best"], payload.get("best_step")
        self.history = payload.get("history", [])
        log(f"resuming from checkpoints/last.pt at step {self.step} of {self.total}")

    def _save_last(self) -> None:
        """last.pt from rank 0; every rank waits until it is written."""
        if self.world.main:
            self.checkpoints.save_last(self.payload())
        distributed.barrier(self.world)

    # -- the loop ----------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        if self.world.main:
            from torch.utils.tensorboard import SummaryWriter

            outputs.write_start(self)
            writer = SummaryWriter(str(self.output / "tensorboard"))
        else:
            writer = NullWriter()
        self.model.train()
        report_every = max(1, min(self.steps_per_epoch, 10))
        with Preemption() as preemption:
            self._steps(preemption, writer, report_every)
        writer.close()
        return self._finish()

    def _steps(self, preemption: Preemption, writer, report_every: int) -> None:
        running: dict[str, float] = {}
        seen, started = 0, time.perf_counter()
        while self.step < self.total:
            epoch, start_step = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch, start_step)
            for micro in self._global_batches():
                losses = self.train_step(micro)
                self.step += 1
                seen += sum(len(images) for images, _ in micro)
                for key, value in losses.items():
                    running[key] = running.get(key, 0.0) + value
                count = running.get("_n", 0.0) + 1
                running["_n"] = count
                if self.step % report_every == 0 or self.step == self.total:
                    # images/s of the whole run: every rank sees as many images per step
                    self._report_train(running, writer,
                                       seen * self.world.size / (time.perf_counter() - started))
                    running = {}
                events.emit(events.progress("train", self.step, self.total))
                if self.step % self.val_steps == 0 or self.step == self.total:
                    self._validate(writer)
                elif self.hp.checkpoint_every and self.step % self.hp.checkpoint_every == 0:
                    self._save_last()
                if preemption.asked(self.world, self.device):
                    self._save_last()
                    log(f"SIGTERM: wrote checkpoints/last.pt at step {self.step} of {self.total}; a retry resumes "
                        f"from it")
                    writer.close()
                    raise SystemExit(PREEMPTED_EXIT)
                if self.step >= self.total:
                    break
            else:
                # An epoch ended between validations: save for resumption, but at most once a minute, so
                # that short epochs (small datasets) do not spend their time writing checkpoints. Rank 0's clock
                # decides for everyone (a save is followed by a barrier all ranks must reach).
                due = distributed.share(self.world, self.checkpoints.seconds_since_last()
                                        >= EPOCH_CHECKPOINT_SECONDS)
                if self.step % self.val_steps and due:
                    self._save_last()

    def _global_batches(self):
        """The rest of the epoch as optimizer steps: lists of `grad_accum` micro-batches (images, targets)."""
        group: list[tuple[list, list]] = []
        for batch in self.train_loader:
            group.append(batch)
            if len(group) == self.accum:
                yield group
                group = []

    def train_step(self, micro: list[tuple[list, list]]) -> dict[str, float]:
        """One optimizer step over this rank's micro-batches (gradients averaged over micro-batches and ranks);
        returns this rank's loss terms, averaged over its micro-batches. The non-finite check runs on the loss
        summed over ranks, so every rank stops at the same step."""
        import contextlib

        import torch

        self.optimizer.zero_grad(set_to_none=True)
        if self.multiscale:
            micro = [rescale(b, self.multiscale.size(self.step) / self.hp.image_size) for b in micro]
        num_boxes = self._mean_boxes(micro)
        totals: dict[str, float] = {}
        for a, (images, targets) in enumerate(micro):
            last = a == len(micro) - 1
            # gradients are all-reduced once per step, on the last micro-batch
            sync = contextlib.nullcontext() if last or not self.world.distributed else self.net.no_sync()
            with sync:
                with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                    if num_boxes is None:
                        losses = self.adapter.losses(self.net, images, targets, self.device)
                    else:
                        losses = self.adapter.losses(self.net, images, targets, self.device, num_boxes=num_boxes)
                loss = losses["sum"]
                check = distributed.sum_all(self.world, loss.detach().float().reshape(1).clone())
                if not torch.isfinite(check).all():
                    raise TrainingError(f"training diverged at step {self.step + 1} (loss {check.item()}); lower "
                                        f"lr (now {self.hp.lr}) or raise warmup_steps")
                self.scaler.scale(loss / len(micro) if len(micro) > 1 else loss).backward()
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + float(value.detach())
        if self.hp.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hp.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema:
            self.ema.update(self.model)
        return {k: v / len(micro) for k, v in totals.items()} if len(micro) > 1 else totals

    def _mean_boxes(self, micro: list[tuple[list, list]]) -> float | None:
        """Objects per micro-batch over every rank and micro-batch of this step, for adapters whose box loss
        terms divide by the batch's object count (DETR family: the reference divides by the global count, so a
        rank with few boxes does not weigh them up); None for one micro-batch in one process (nothing to do)."""
        import torch

        if not self.adapter.global_box_norm or self.world.size * len(micro) == 1:
            return None
        local = float(sum(len(t["boxes"]) for _, targets in micro for t in targets))
        total = distributed.sum_all(self.world, torch.tensor([local], device=self.device))
        return float(total.item()) / (self.world.size * len(micro))

    def epoch(self) -> float:
        return round(self.step / self.steps_per_epoch, 4)

    def _report_train(self, running: dict[str, float], writer, images_per_s: float) -> None:
        """Loss terms since the last report, averaged over steps (and over ranks: rank 0 gathers them)."""
        gathered = distributed.gather(self.world, running)
        if gathered is None:
            return
        if len(gathered) > 1:  # a term some rank lacks (a denoising loss on a batch without boxes) averages over the others
            keys = {k for r in gathered for k in r}
            running = {k: sum(r[k] for r in gathered if k in r) / sum(1 for r in gathered if k in r) for k in keys}
        n = running.pop("_n")
        values = {("loss" if k == "sum" else k): v / n for k, v in running.items()}
        values["lr"] = self.optimizer.param_groups[0]["lr"]
        values["images_per_s"] = images_per_s
        events.emit(events.metrics("train", self.epoch(), values))
        for key, value in values.items():
            writer.add_scalar(f"train/{key}", value, self.step)
        self.history.append({"type": "train", "step": self.step, "epoch": self.epoch(), **values})

    # -- validation --------------------------------------------------------------------------------------
    def evaluate(self, model=None) -> dict[str, Any] | None:
        """COCO metrics of `model` (default: the trained one) on the validation images (bbox, and segm for mask models). Every
        rank predicts its share; rank 0 evaluates the gathered results and returns them (None elsewhere)."""
        import torch

        from cvatflow.training.evaluation import coco_gt, evaluate, to_results

        data = self.setup.data
        cat_ids = [c["id"] for c in data.categories]
        model = model or self.model
        distributed.broadcast_buffers(self.world, model)  # BatchNorm statistics as rank 0 has them
        results: dict[int, list[dict[str, Any]]] = {}
        model.eval()
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            for images, targets in self.val_loader:
                for target, pred in zip(targets, self.adapter.predict(model, images, self.device,
                                                                      self.hp.score_threshold)):
                    results[target["image_id"]] = to_results(target["image_id"], pred, target["scale"],
                                                             target["orig_size"], cat_ids, self.adapter.masks)
        self.model.train()
        shares = distributed.gather(self.world, results)
        if shares is None:
            return None
        merged = {k: v for share in shares for k, v in share.items()}
        ordered = [r for image_id in data.val_ids if image_id in merged for r in merged[image_id]]
        if self.gt is None:
            self.gt = coco_gt(data.subset_coco(data.val_ids))
        metrics = evaluate(self.gt, ordered, "bbox", self.setup.max_dets)
        if self.adapter.masks:
            segm = evaluate(self.gt, ordered, "segm", self.setup.max_dets)
            metrics["segm"] = segm
        return metrics

    def _validate(self, writer) -> None:
        metrics = self.evaluate(self.ema.module if self.ema else None)
        if self.world.main:
            self._record_validation(metrics, writer)
        distributed.barrier(self.world)  # after rank 0's checkpoint saves

    def _record_validation(self, metrics: dict[str, Any], writer) -> None:
        """Rank 0: metrics event, TensorBoard, history, numbered/best/last checkpoints."""
        values = {k: metrics[k] for k in ("mAP", "AP50", "AP75", "AR100", "precision", "recall", "f1", "f1_conf")}
        if "segm" in metrics:
            values.update({f"segm_{k}": metrics["segm"][k] for k in ("mAP", "AP50", "AP75")})
        if metrics["max_dets"] > COCO_MAX_DETS:  # dense data: COCO's standard number beside ours
            values.update(AR_max=metrics["AR_max"], mAP_coco100=metrics["coco100"]["mAP"])
        for title, ap in metrics["per_class"].items():
            values[f"AP/{title}"] = ap["AP"]
        events.emit(events.metrics("val", self.epoch(), values))
        for key, value in values.items():
            writer.add_scalar(f"val/{key}", value, self.step)
        self.history.append({"type": "val", "step": self.step, "epoch": self.epoch(), **values})
        log(f"step {self.step}/{self.total} epoch {self.epoch():.2f}: mAP {values['mAP']:.4f} "
            f"AP50 {values['AP50']:.4f} AP75 {values['AP75']:.4f}")
        best_now = values["mAP"] > self.best or self.best_step is None
        if best_now:
            self.best, self.best_step, self.best_metrics = values["mAP"], self.step, metrics
        payload = self.payload()
        # numbered and best checkpoints keep the weights; only last.pt needs the optimizer to resume
        light = {k: v for k, v in payload.items() if k not in ("optimizer", "scheduler", "scaler", "ema")}
        if self.ema:
            light["model"] = self.ema.module.state_dict()  # the weights just validated
        self.checkpoints.save_numbered(self.step, light, best_now, {"mAP": values["mAP"]})
        self.checkpoints.save_last(payload)

    # -- outputs (training/outputs.py; kept as methods for callers and tests) ----------------------------------
    def _write_start(self) -> None:
        outputs.write_start(self)

    def _finish(self) -> dict[str, Any]:
        return outputs.finish(self)

    def _experiment_info(self, final: dict[str, Any], best: dict[str, Any], exported: Path | None) -> dict[str, Any]:
        return outputs.experiment_info(self, final, best, exported)


def train(run: Run) -> dict[str, Any]:
    """Check every input, then train; returns the best model's evaluation. Under torchrun every rank runs this
    and joins the process group; the group is left at the end, also on errors."""
    distributed.silence(distributed.launched())  # Setup's notes and warnings come once too
    setup = Setup(run)
    try:
        # an adapter may bring its own Trainer subclass (interactive segmentation validates by clicks)
        trainer = getattr(setup.adapter, "trainer", Trainer)(setup)
        return trainer.train()
    finally:
        sys.stdout.flush()
        distributed.leave()
