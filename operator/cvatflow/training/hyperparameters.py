"""Training hyperparameters: defaults per model, read from a YAML string or file, validated, printable."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from cvatflow.errors import TrainingError

OPTIMIZERS = ("adamw", "sgd")
WEIGHTS_INIT_TYPES = ("transfer_learning", "continue_training")
AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass
class Hyperparameters:
    """Everything a training run can be tuned with; one field per YAML key."""

    epochs: int = 12
    batch_size: int = 4
    lr: float = 1e-3
    backbone_lr: float | None = None  # None: same as lr
    optimizer: str = "adamw"
    momentum: float = 0.9  # sgd only
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * min_lr_ratio
    val_every: float = 1.0  # in epochs; 0.5 = twice an epoch
    checkpoint_every: int = 0  # steps between last.pt saves; 0 = at each validation, and at an epoch's end once a minute has passed
    keep_checkpoints: int = 3  # numbered checkpoints kept (best and last are always kept)
    image_size: int = 256  # longest image side fed to the model
    hflip: float = 0.5  # probability of a horizontal flip in training
    amp: str = "auto"  # auto: bf16 on GPUs that have it, else fp16 on GPU; never on CPU
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    num_workers: int = 2
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    val_batch_size: int | None = None  # None: batch_size
    val_percent: float = 10.0  # used when the data has no train_val_split.json
    allow_untrained_classes: bool = False  # accept classes with no training instance (else an error)
    weights_init_type: str = "transfer_learning"
    score_threshold: float = 0.05  # detections kept for evaluation

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _type_of(field: dataclasses.Field) -> tuple[type, bool]:
    """The base type of a field and whether it may be null (fields are annotated as strings)."""
    text = str(field.type)
    optional = "None" in text
    base = text.replace("| None", "").strip()
    return {"int": int, "float": float, "str": str, "bool": bool}[base], optional


def _coerce(name: str, value: Any, field: dataclasses.Field) -> Any:
    kind, optional = _type_of(field)
    if value is None:
        if optional:
            return None
        raise TrainingError(f"hyperparameters: {name} may not be empty (give a {kind.__name__}, default "
                            f"{field.default!r})")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is str and isinstance(value, bool) and name == "amp":
        return "auto" if value else "off"  # `amp: true` reads naturally
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise TrainingError(f"hyperparameters: {name} must be a {kind.__name__}, got {value!r} "
                            f"(default {field.default!r})")
    return value


def _check(hp: Hyperparameters) -> None:
    """Range checks: each names the key, the allowed values and the bad value."""
    def bad(name: str, rule: str) -> TrainingError:
        return TrainingError(f"hyperparameters: {name} must be {rule}, got {getattr(hp, name)!r}")

    for name in ("epochs", "batch_size", "image_size"):
        if getattr(hp, name) < 1:
            raise bad(name, "at least 1")
    for name in ("warmup_steps", "checkpoint_every", "num_workers", "keep_checkpoints", "seed"):
        if getattr(hp, name) < 0:
            raise bad(name, "0 or more")
    for name in ("lr", "val_every"):
        if getattr(hp, name) <= 0:
            raise bad(name, "greater than 0")
    for name in ("weight_decay", "grad_clip"):
        if getattr(hp, name) < 0:
            raise bad(name, "0 or more")
    for name in ("hflip", "min_lr_ratio", "score_threshold"):
        if not 0 <= getattr(hp, name) <= 1:
            raise bad(name, "between 0 and 1")
    if not 0 < hp.val_percent < 100:
        raise bad("val_percent", "between 0 and 100 (exclusive)")
    if hp.max_steps is not None and hp.max_steps < 1:
        raise bad("max_steps", "at least 1 or null")
    if hp.val_batch_size is not None and hp.val_batch_size < 1:
        raise bad("val_batch_size", "at least 1 or null")
    if hp.backbone_lr is not None and hp.backbone_lr < 0:
        raise bad("backbone_lr", "0 or more, or null")
    if hp.optimizer not in OPTIMIZERS:
        raise bad("optimizer", f"one of {', '.join(OPTIMIZERS)}")
    if hp.amp not in AMP_MODES:
        raise bad("amp", f"one of {', '.join(AMP_MODES)}")
    if hp.weights_init_type not in WEIGHTS_INIT_TYPES:
        raise bad("weights_init_type", f"one of {', '.join(WEIGHTS_INIT_TYPES)}")


def read_text(source: str | Path | None) -> str:
    """The YAML text of `source`: a path to an existing file, or the YAML itself (the template's textarea)."""
    if source is None:
        return ""
    text = str(source)
    if "\n" not in text and len(text) < 4096:
        path = Path(text).expanduser()
        if path.suffix in (".yaml", ".yml", ".json") and not path.is_file():
            raise TrainingError(f"hyperparameters: file {text} does not exist (pass an existing YAML file or "
                                f"the YAML text itself)")
        if path.is_file():
            return path.read_text()
    return text


def parse(source: str | Path | None, defaults: dict[str, Any] | None = None,
          overrides: dict[str, Any] | None = None) -> Hyperparameters:
    """Hyperparameters from YAML (string or file) over the model's defaults; `overrides` (CLI flags) win."""
    text = read_text(source)
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TrainingError(f"hyperparameters: not valid YAML{where}: {getattr(exc, 'problem', exc)} "
                            f"(write one `key: value` per line)") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TrainingError(f"hyperparameters: expected a mapping of `key: value` lines, got a "
                            f"{type(data).__name__} (e.g. `epochs: 10`)")
    known = {f.name: f for f in fields(Hyperparameters)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise TrainingError(f"hyperparameters: unknown key{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)} (known keys: {', '.join(known)})")
    merged: dict[str, Any] = {}
    for layer in (defaults or {}, data, {k: v for k, v in (overrides or {}).items() if v is not None}):
        for name, value in layer.items():
            merged[name] = _coerce(name, value, known[name])
    hp = Hyperparameters(**merged)
    _check(hp)
    return hp
