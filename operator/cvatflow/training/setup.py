"""Before the first step: the run's inputs checked, hyperparameters resolved, device, AMP, LR schedule, model."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvatflow.errors import TrainingError
from cvatflow.training import data as datalib
from cvatflow.training import state as statelib
from cvatflow.training.checkpoints import load
from cvatflow.training.hyperparameters import Hyperparameters, read_mapping, resolve

# CPU threads in deterministic mode: fixed, so that float reductions split their work the same way each run.
DETERMINISTIC_THREADS = 2


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


def pick_device(name: str | None, local_rank: int | None = None):
    """`name` (cuda, cuda:1, cpu), else cuda when present. Under torchrun (`local_rank` given) a bare `cuda`
    becomes this rank's GPU, `cuda:<local_rank>`, made the current device."""
    import torch

    device = torch.device(name) if name else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if local_rank is not None and device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


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
        # a class-agnostic model (Smart Tool) trains on `obj` whatever the CVAT task's label count is
        if run.num_classes is not None and run.num_classes != len(titles) and \
                not getattr(self.adapter, "class_agnostic", False):
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

