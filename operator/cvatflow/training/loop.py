"""The training loop: model set-up, AMP, clipping, warmup+cosine LR, validation, checkpoints, resume, events."""
from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvatflow import events
from cvatflow.datasets.stats import COCO_MAX_DETS
from cvatflow.errors import TrainingError
from cvatflow.training import data as datalib
from cvatflow.training import state as statelib
from cvatflow.training.checkpoints import Checkpoints, load
from cvatflow.training.ema import ModelEma
from cvatflow.training.hyperparameters import Hyperparameters, annotated_yaml, read_mapping, resolve

# CPU threads in deterministic mode: fixed, so that float reductions split their work the same way each run.
DETERMINISTIC_THREADS = 2
# A preempted pod loses at most this much work to epoch-end saves (checkpoint_every sets a step interval).
EPOCH_CHECKPOINT_SECONDS = 60.0


def log(message: str) -> None:
    """Plain log lines go to stdout between the events (watchers skip them)."""
    print(message, flush=True)


@dataclass
class Run:
    """What `train` needs, as the CLI parsed it."""

    model: str  # adapter name
    data: Path
    output: Path
    models: Path | None = None
    hyperparameters: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # --epochs, --batch-size ...
    variant: str | None = None
    num_classes: int | None = None
    pretrained: bool = True
    device: str | None = None
    export: bool = True
    min_objects: int = 1  # refuse a dataset with fewer usable objects (the template's threshold)


def make_deterministic() -> None:
    """`deterministic: true`: the same metrics from the same data on the same machine, at some speed.

    Deterministic kernels where PyTorch has them (ops without one warn instead of failing: torchvision's
    RoIAlign backward on CUDA is one, so Mask R-CNN on a GPU is close, not exact), no cuDNN autotuning,
    cuBLAS's fixed workspace, and a fixed number of CPU threads (float sums depend on how work is split).
    The sampler, the workers and the augmentation are seeded in every mode.
    """
    import os

    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.set_num_threads(DETERMINISTIC_THREADS)
    log(f"deterministic: deterministic algorithms, {DETERMINISTIC_THREADS} CPU threads")


def pick_device(name: str | None):
    import torch

    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def amp_dtype(mode: str, device) -> Any:
    """bf16 on GPUs that have it, fp16 on older GPUs, nothing on CPUs unless asked for."""
    import torch

    if mode == "off" or (device.type != "cuda" and mode == "auto"):
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16" or (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def schedule(hp: Hyperparameters, total: int):
    """LR factor: linear warmup, then cosine decay to `min_lr_ratio`."""
    warmup = min(hp.warmup_steps, max(total - 1, 0))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return hp.min_lr_ratio + (1 - hp.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


class Setup:
    """Everything checked and built before the first step, so bad inputs fail before any training."""

    def __init__(self, run: Run):
        from cvatflow.models import get_adapter

        self.run = run
        self.adapter = get_adapter(run.model)
        self.init_config: dict[str, Any] | None = None
        self.init_weights: Path | None = None
        if run.models:
            state = statelib.ModelState.read(run.models, what="--models")
            self.init_config, self.init_weights = state.config, state.weights
            checkpoint_variant = self.init_config["settings"]["variant"]
            if run.variant and run.variant != checkpoint_variant:
                raise TrainingError(f"--model {run.variant}: the checkpoint in --models {run.models} is a "
                                    f"{checkpoint_variant} (drop --model or pass --model {checkpoint_variant})")
            self.variant = self.adapter.check_variant(checkpoint_variant)
        else:
            self.variant = self.adapter.check_variant(run.variant or self.adapter.default_variant)
        self.hp, self.sources = resolve(run.hyperparameters, self.adapter.default_hyperparameters(self.variant),
                                        run.overrides, f"default of {self.variant}")
        _note_overrides(read_mapping(run.hyperparameters), run.overrides, self.hp)
        self.data = datalib.load(run.data, self.hp.val_percent, self.hp.seed, min_objects=run.min_objects,
                                 allow_untrained=self.hp.allow_untrained_classes)
        titles = self.data.class_titles
        if run.num_classes is not None and run.num_classes != len(titles):
            raise TrainingError(f"--num-classes {run.num_classes}: the dataset has {len(titles)} categories "
                                f"({', '.join(titles)}); pass --num-classes {len(titles)} or fix the labels")
        if self.init_config is not None and self.hp.weights_init_type == "continue_training":
            theirs = statelib.class_titles(self.init_config)
            if theirs != titles:
                raise TrainingError(f"weights_init_type continue_training: the checkpoint's classes "
                                    f"({', '.join(theirs)}) differ from the dataset's ({', '.join(titles)}); "
                                    f"use weights_init_type: transfer_learning for new classes")
        if self.adapter.masks and not self.data.has_masks:
            log("note: the dataset has boxes but no masks; boxes serve as masks")
        self.settings = (dict(self.init_config["settings"]) if self.init_config
                         else self.adapter.settings(self.variant, self.hp.image_size))
        self.settings["image_size"] = self.hp.image_size
        self.fit = fit_to_data(self.adapter, self.settings, self.data.coco, self.variant, self.hp.image_size)
        self.max_dets = self.fit["max_dets"]
        self.resume = None
        last = Path(run.output) / "checkpoints" / "last.pt"
        if last.is_file():
            self.resume = load(last)
            if self.resume.get("classes") != titles or self.resume.get("settings", {}).get("variant") != self.variant:
                raise TrainingError(f"--output {run.output}: checkpoints/last.pt is from another run (classes "
                                    f"{self.resume.get('classes')}, variant "
                                    f"{self.resume.get('settings', {}).get('variant')}); use a new --output "
                                    f"folder or delete its checkpoints/")


def fit_to_data(adapter, settings: dict[str, Any], coco: dict[str, Any], variant: str,
                image_size: int) -> dict[str, Any]:
    """Grow the model's detections per image (in `settings`) and COCO maxDets to the densest image; warn about
    objects too small for the model at `image_size`. Returns what experiment_info.json records."""
    from cvatflow.datasets import stats

    density = stats.objects_per_image(coco)
    for line in adapter.fit_capacity(settings, density["max"]):
        log(line)
    fit: dict[str, Any] = {"objects_per_image": density,
                           "max_dets": stats.capacity(density["max"], stats.COCO_MAX_DETS),
                           "model_capacity": {k: settings[k] for k in ("num_queries", "box_detections_per_img")
                                              if k in settings}}
    min_size = adapter.min_object_size(variant)
    if min_size:
        fit["small_objects"] = stats.small_objects(coco, image_size, min_size)
        message = stats.small_objects_message(fit["small_objects"], variant)
        if message:
            log(f"warning: {message}")
    return fit
def _note_overrides(data: dict[str, Any], overrides: dict[str, Any], hp: Hyperparameters) -> None:
    """Say so when a flag (a template's form field) overrides a different value in the YAML: never silently."""
    for name, flag in overrides.items():
        if flag is not None and name in data and data[name] != getattr(hp, name):
            log(f"note: --{name.replace('_', '-')} {flag} overrides {name}: {data[name]} of the hyperparameters")


def build_model(setup: Setup, device):
    """The model with its starting weights: fine-tune checkpoint, hub weights, or random (small variants)."""
    adapter, titles = setup.adapter, setup.data.class_titles
    pretrained = setup.run.pretrained and setup.init_weights is None and setup.resume is None
    try:
        model = adapter.build(setup.settings, len(titles), pretrained)
    except OSError as exc:
        raise TrainingError(f"--model {setup.variant}: cannot download pretrained weights ({exc}); pass "
                            f"--models with a checkpoint, --no-pretrained, or a small variant "
                            f"({adapter.small_variant})") from None
    if setup.init_weights is not None and setup.resume is None:
        weights = statelib.load_weights(setup.init_weights)
        for line in adapter.adapt_weights(weights, model):
            log(line)
        if setup.hp.weights_init_type == "transfer_learning":
            for key in adapter.head_keys(weights):
                weights.pop(key)  # the class head is re-initialised for this task's classes
            own = model.state_dict()
            skipped = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
            if skipped:
                raise TrainingError(f"--models {setup.run.models}: weights do not fit {setup.variant} "
                                    f"(e.g. {skipped[0]}); the checkpoint is from another architecture")
            missing, unexpected = model.load_state_dict(weights, strict=False)
            unexpected = [k for k in unexpected]
            if unexpected:
                raise TrainingError(f"--models {setup.run.models}: weights have keys {setup.variant} lacks "
                                    f"(e.g. {unexpected[0]}); the checkpoint is from another architecture")
            log(f"transfer learning from {setup.init_weights} ({len(missing)} head tensors re-initialised)")
        else:
            try:
                model.load_state_dict(weights)
            except RuntimeError as exc:
                raise TrainingError(f"--models {setup.run.models}: weights do not match {setup.variant} with "
                                    f"{len(titles)} classes ({str(exc).splitlines()[0]})") from None
            log(f"continue training from {setup.init_weights}")
    return model.to(device)


class Trainer:
    """One training run over a Setup; writes everything into `run.output`."""

    def __init__(self, setup: Setup):
        import torch

        self.setup, self.run, self.hp, self.adapter = setup, setup.run, setup.hp, setup.adapter
        self.output = Path(self.run.output)
        self.device = pick_device(self.run.device)
        self.amp = amp_dtype(self.hp.amp, self.device)
        if self.hp.deterministic:
            make_deterministic()
        random.seed(self.hp.seed)
        torch.manual_seed(self.hp.seed)
        self.model = build_model(setup, self.device)
        data = setup.data
        pin = self.device.type == "cuda"
        self.train_set = datalib.DetectionDataset(data, data.train_ids, self.hp.image_size, self.adapter.masks,
                                                  self.hp.hflip, self.hp.seed)
        self.val_set = datalib.DetectionDataset(data, data.val_ids, self.hp.image_size, self.adapter.masks)
        self.train_loader = datalib.loader(self.train_set, self.hp.batch_size, self.hp.num_workers, self.hp.seed,
                                           True, pin)
        self.val_loader = datalib.loader(self.val_set, self.hp.val_batch_size or self.hp.batch_size,
                                         self.hp.num_workers, self.hp.seed, False, pin)
        self.steps_per_epoch = len(self.train_loader.batch_sampler)
        self.total = self.hp.epochs * self.steps_per_epoch
        if self.hp.max_steps:
            self.total = min(self.total, self.hp.max_steps)
        self.val_steps = max(1, round(self.hp.val_every * self.steps_per_epoch))
        groups = self.adapter.param_groups(self.model, self.hp.lr, self.hp.backbone_lr if self.hp.backbone_lr
                                           is not None else self.hp.lr)
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

    # -- state -------------------------------------------------------------------------------------------
    def payload(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "step": self.step,
                "best": self.best, "best_step": self.best_step, "history": self.history,
                "settings": self.setup.settings, "classes": self.setup.data.class_titles,
                "hyperparameters": self.hp.to_dict(), "split": self.setup.data.split,
                **({"ema": self.ema.state_dict()} if self.ema else {})}

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

    # -- the loop ----------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        import torch
        from torch.utils.tensorboard import SummaryWriter

        self._write_start()
        writer = SummaryWriter(str(self.output / "tensorboard"))
        self.model.train()
        sampler = self.train_loader.batch_sampler
        report_every = max(1, min(self.steps_per_epoch, 10))
        running: dict[str, float] = {}
        seen, started = 0, time.perf_counter()
        while self.step < self.total:
            epoch, start_batch = divmod(self.step, self.steps_per_epoch)
            sampler.set_epoch(epoch, start_batch)
            for images, targets in self.train_loader:
                with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                    losses = self.adapter.losses(self.model, images, targets, self.device)
                loss = losses["sum"]
                if not torch.isfinite(loss):
                    raise TrainingError(f"training diverged at step {self.step + 1} (loss {loss.item()}); lower "
                                        f"lr (now {self.hp.lr}) or raise warmup_steps")
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if self.hp.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hp.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                if self.ema:
                    self.ema.update(self.model)
                self.step += 1
                seen += len(images)
                for key, value in losses.items():
                    running[key] = running.get(key, 0.0) + float(value.detach())
                count = running.get("_n", 0.0) + 1
                running["_n"] = count
                if self.step % report_every == 0 or self.step == self.total:
                    self._report_train(running, writer, seen / (time.perf_counter() - started))
                    running = {}
                events.emit(events.progress("train", self.step, self.total))
                if self.step % self.val_steps == 0 or self.step == self.total:
                    self._validate(writer)
                elif self.hp.checkpoint_every and self.step % self.hp.checkpoint_every == 0:
                    self.checkpoints.save_last(self.payload())
                if self.step >= self.total:
                    break
            else:
                # An epoch ended between validations: save for resumption, but at most once a minute, so
                # that short epochs (small datasets) do not spend their time writing checkpoints.
                if self.step % self.val_steps and self.checkpoints.seconds_since_last() >= EPOCH_CHECKPOINT_SECONDS:
                    self.checkpoints.save_last(self.payload())
        writer.close()
        return self._finish()

    def epoch(self) -> float:
        return round(self.step / self.steps_per_epoch, 4)

    def _report_train(self, running: dict[str, float], writer, images_per_s: float) -> None:
        n = running.pop("_n")
        values = {("loss" if k == "sum" else k): v / n for k, v in running.items()}
        values["lr"] = self.optimizer.param_groups[0]["lr"]
        values["images_per_s"] = images_per_s
        events.emit(events.metrics("train", self.epoch(), values))
        for key, value in values.items():
            writer.add_scalar(f"train/{key}", value, self.step)
        self.history.append({"type": "train", "step": self.step, "epoch": self.epoch(), **values})

    def evaluate(self, model=None) -> dict[str, Any]:
        """COCO metrics of `model` (default: the trained one) on the validation images (bbox, and segm for mask
        models)."""
        import torch

        from cvatflow.training.evaluation import coco_gt, evaluate, to_results

        data = self.setup.data
        if self.gt is None:
            self.gt = coco_gt(data.subset_coco(data.val_ids))
        cat_ids = [c["id"] for c in data.categories]
        results: list[dict[str, Any]] = []
        model = model or self.model
        model.eval()
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            for images, targets in self.val_loader:
                for target, pred in zip(targets, self.adapter.predict(model, images, self.device,
                                                                      self.hp.score_threshold)):
                    results += to_results(target["image_id"], pred, target["scale"], target["orig_size"], cat_ids,
                                          self.adapter.masks)
        self.model.train()
        metrics = evaluate(self.gt, results, "bbox", self.setup.max_dets)
        if self.adapter.masks:
            segm = evaluate(self.gt, results, "segm", self.setup.max_dets)
            metrics["segm"] = segm
        return metrics

    def _validate(self, writer) -> None:
        metrics = self.evaluate(self.ema.module if self.ema else None)
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

    # -- outputs -----------------------------------------------------------------------------------------
    def _write_start(self) -> None:
        self.output.mkdir(parents=True, exist_ok=True)
        text = annotated_yaml(self.hp, self.setup.sources)
        log("hyperparameters (effective values, each with its source):\n" + text.rstrip())
        (self.output / "hyperparameters.yaml").write_text(text)
        statelib.write_json(self.output / "train_val_split.json", self.setup.data.split)
        dataset_report = self.setup.data.report
        dataset_report.write(self.output)  # what of the CVAT annotations reaches the model, with the run
        log(f"dataset report: {dataset_report.summary()}")
        for line in dataset_report.warnings():
            log(f"warning: {line}")
        log(f"model {self.setup.variant} on {self.device}; {len(self.train_set)} train / {len(self.val_set)} val "
            f"images, {len(self.setup.data.categories)} classes; {self.total} steps "
            f"({self.steps_per_epoch} per epoch){'; amp ' + str(self.amp) if self.amp else ''}")
        classes = self.setup.data.split.get("classes", {})
        log("objects / images per class (train | val): " + "; ".join(
            f"{name} {c['train']['objects']}/{c['train']['images']} | {c['val']['objects']}/{c['val']['images']}"
            for name, c in classes.items()))
        if self.setup.data.split.get("untrained_classes"):
            log(f"warning: no training instance of {', '.join(self.setup.data.split['untrained_classes'])} "
                f"(allow_untrained_classes is on)")

    def _finish(self) -> dict[str, Any]:
        from cvatflow.training import report

        best_path = self.output / "checkpoints" / "best.pt"
        best = load(best_path)
        self.model.load_state_dict(best["model"])
        titles = self.setup.data.class_titles
        shape = "bitmap" if self.adapter.masks else "rectangle"
        config = statelib.model_config({**self.setup.settings, "hyperparameters": self.hp.to_dict()}, titles, shape)
        statelib.write_model_state(self.output / "model", config, {k: v.cpu() for k, v in
                                                                    self.model.state_dict().items()})
        final = self.evaluate()  # the best model's full metrics, for the report
        exported = None
        if self.run.export:
            from cvatflow.training.export import export_onnx

            exported = export_onnx(self.adapter, self.model, self.output / "export" / "best.onnx",
                                   self.hp.image_size)
        report.write(self.output / "report", self.history, final, best_step=best["step"])
        statelib.write_json(self.output / "model_meta.json", statelib.model_meta(titles, shape))
        statelib.write_json(self.output / "experiment_info.json", self._experiment_info(final, best, exported))
        log(f"done: best mAP {final['mAP']:.4f} at step {best['step']}; model state in {self.output / 'model'}")
        return final

    def _experiment_info(self, final: dict[str, Any], best: dict[str, Any], exported: Path | None) -> dict[str, Any]:
        import datetime

        checkpoints = sorted(p.name for p in (self.output / "checkpoints").glob("*.pt"))
        return {
            "experiment_name": f"{self.setup.variant} on {Path(self.run.data).name}",
            "framework_name": self.adapter.framework,
            "model_name": self.setup.variant,
            "task_type": self.adapter.task_type,
            "base_checkpoint": str(self.setup.init_weights) if self.setup.init_weights else None,
            "model_files": {"config": "model/config.json", "weights": f"model/{statelib.WEIGHTS}"},
            "checkpoints": [f"checkpoints/{name}" for name in checkpoints],
            "best_checkpoint": "best.pt",
            "export": {"ONNXRuntime": "export/best.onnx"} if exported else {},
            "model_meta": "model_meta.json",
            "hyperparameters": "hyperparameters.yaml",
            "hyperparameter_values": self.hp.to_dict(),
            "hyperparameter_sources": self.setup.sources,
            "artifacts_dir": str(self.output),
            "datetime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "evaluation_metrics": {**{k: final[k] for k in ("mAP", "AP50", "AP75", "precision", "recall", "f1",
                                                            "f1_conf", "max_dets")},
                                   "coco100": {k: final["coco100"][k] for k in ("mAP", "AP50", "AP75")}},
            "dataset_fit": {**self.setup.fit, "classes": self.setup.data.split.get("classes", {}),
                            "untrained_classes": self.setup.data.split.get("untrained_classes", [])},
            "primary_metric": "mAP",
            "logs": {"type": "tensorboard", "link": "tensorboard/"},
            "device": str(self.device),
            "steps": self.step,
            "best_step": best["step"],
            "train_val_split": "train_val_split.json",
            "dataset_report": "dataset_report.json",
            "dataset": {"summary": self.setup.data.report.summary(),
                        "objects": self.setup.data.report.to_dict()["objects"],
                        "warnings": len(self.setup.data.report.warnings())},
            "train_size": len(self.train_set),
            "val_size": len(self.val_set),
        }


def train(run: Run) -> dict[str, Any]:
    """Check every input, then train; returns the best model's evaluation."""
    setup = Setup(run)
    trainer = Trainer(setup)
    try:
        return trainer.train()
    finally:
        sys.stdout.flush()
