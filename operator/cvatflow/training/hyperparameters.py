"""Training hyperparameters: defaults per model, read from a YAML string or file, validated, printable."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cvatflow.errors import TrainingError

OPTIMIZERS = ("adamw", "sgd")
WEIGHTS_INIT_TYPES = ("transfer_learning", "continue_training")
AMP_MODES = ("auto", "bf16", "fp16", "off")
SYNC_BN_MODES = ("auto", "on", "off")
LR_SCALING = ("none", "linear")


# Longest accepted number in YAML: 45,000-digit integers are refused before Python parses them.
MAX_DIGITS = 30


def bounds(low: float | None = None, high: float | None = None, *, above: bool = False,
           below: bool = False) -> dict[str, Any]:
    """A field's numeric bounds (dataclass metadata): `low <= value <= high`; `above`/`below` exclude the ends."""
    return {"low": low, "high": high, "above": above, "below": below}


def bound_rule(low: float | None, high: float | None, above: bool = False, below: bool = False) -> str:
    """The words for a range, as errors print it: "at least 1", "greater than 0 and at most 10"..."""
    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else str(x)

    if low is not None and high is not None:
        return (f"greater than {num(low)}" if above else f"at least {num(low)}") + \
            (f" and less than {num(high)}" if below else f" and at most {num(high)}")
    if low is not None:
        return f"greater than {num(low)}" if above else f"at least {num(low)}"
    if high is not None:
        return f"less than {num(high)}" if below else f"at most {num(high)}"
    return "a number"


def out_of_bounds(value: float, low: float | None, high: float | None, above: bool = False,
                  below: bool = False) -> bool:
    """Whether a number breaks its bounds; NaN and infinities always do."""
    if isinstance(value, float) and not math.isfinite(value):
        return True
    return ((low is not None and (value <= low if above else value < low))
            or (high is not None and (value >= high if below else value > high)))


@dataclass
class Hyperparameters:
    """Everything a training run can be tuned with; one field per YAML key, with its bounds (the schema)."""

    epochs: int = field(default=12, metadata=bounds(1, 100_000))
    batch_size: int = field(default=4, metadata=bounds(1, 4096))
    lr: float = field(default=1e-3, metadata=bounds(0, 10, above=True))
    backbone_lr: float | None = field(default=None, metadata=bounds(0, 10))  # None: same as lr
    optimizer: str = "adamw"
    momentum: float = field(default=0.9, metadata=bounds(0, 1))  # sgd only
    weight_decay: float = field(default=1e-4, metadata=bounds(0, 10))
    warmup_steps: int = field(default=50, metadata=bounds(0, 10_000_000))
    min_lr_ratio: float = field(default=0.05, metadata=bounds(0, 1))  # cosine decay ends at lr * min_lr_ratio
    val_every: float = field(default=1.0, metadata=bounds(0, 100_000, above=True))  # in epochs; 0.5 = twice an epoch
    # steps between last.pt saves; 0 = at each validation, and at an epoch's end once a minute has passed
    checkpoint_every: int = field(default=0, metadata=bounds(0, 10_000_000))
    keep_checkpoints: int = field(default=3, metadata=bounds(0, 10_000))  # numbered checkpoints kept (best and last are always kept)
    image_size: int = field(default=256, metadata=bounds(1, 8192))  # longest image side fed to the model
    hflip: float = field(default=0.5, metadata=bounds(0, 1))  # probability of a horizontal flip in training
    # each training step at a size drawn from 0.75..1.25 x image_size (32 px steps), until multi_scale_until of the
    # steps; evaluation and export stay at image_size (RT-DETR/D-FINE recipes; training/multiscale.py)
    multi_scale: bool = False
    multi_scale_until: float = field(default=1.0, metadata=bounds(0, 1))
    amp: str = "auto"  # auto: bf16 on GPUs that have it, else fp16 on GPU; never on CPU
    grad_clip: float = field(default=1.0, metadata=bounds(0, 1e6))  # max gradient norm; 0 = off
    # exponential moving average of the weights (validated, saved and exported instead of the raw ones); 0 = off
    ema_decay: float = field(default=0.0, metadata=bounds(0, 1, below=True))
    ema_warmup_steps: int = field(default=2000, metadata=bounds(0, 10_000_000))  # decay ramps up over ~these steps
    num_workers: int = field(default=2, metadata=bounds(0, 256))
    seed: int = field(default=0, metadata=bounds(0, 2**32 - 1))
    # stop after this many optimizer steps (overrides epochs)
    max_steps: int | None = field(default=None, metadata=bounds(1, 1_000_000_000))
    val_batch_size: int | None = field(default=None, metadata=bounds(1, 4096))  # None: batch_size
    # used when the data has no train_val_split.json
    val_percent: float = field(default=10.0, metadata=bounds(0, 100, above=True, below=True))
    allow_untrained_classes: bool = False  # accept classes with no training instance (else an error)
    weights_init_type: str = "transfer_learning"
    score_threshold: float = field(default=0.05, metadata=bounds(0, 1))  # detections kept for evaluation
    # torch deterministic algorithms, one CPU thread, seeded workers and augmentation: repeatable metrics
    deterministic: bool = False
    # Many processes (torchrun): optimizer steps see batch_size x processes x grad_accum images; grad_accum > 1
    # also reaches a large batch on one GPU
    grad_accum: int = field(default=1, metadata=bounds(1, 4096))
    # minutes a collective waits for the slowest rank (rank 0 saving or evaluating) before the run fails
    dist_timeout: float = field(default=30.0, metadata=bounds(0, 10_000, above=True))
    sync_bn: str = "auto"  # auto: SyncBatchNorm on several GPUs when the model trains BatchNorm layers
    # linear: lr and backbone_lr are for batch_size images; multiplied by processes x grad_accum (logged)
    lr_scaling: str = "none"

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
    if kind is str and isinstance(value, bool) and name == "sync_bn":
        return "on" if value else "off"  # YAML 1.1 reads `sync_bn: on` as true
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise TrainingError(f"hyperparameters: {name} must be a {kind.__name__}, got {value!r} "
                            f"(default {field.default!r})")
    return value


def short(value: Any, limit: int = 40) -> str:
    """A value's repr cut to `limit` characters, so a 4,000-digit number does not fill the error."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check(hp: Hyperparameters) -> None:
    """Range checks from the schema's bounds: each names the key, the allowed values and the bad value."""
    def bad(name: str, rule: str) -> TrainingError:
        return TrainingError(f"hyperparameters: {name} must be {rule}, got {short(getattr(hp, name))}")

    for f in fields(Hyperparameters):
        value = getattr(hp, f.name)
        if "low" not in f.metadata or value is None:
            continue
        if out_of_bounds(value, f.metadata["low"], f.metadata["high"], f.metadata["above"], f.metadata["below"]):
            rule = bound_rule(f.metadata["low"], f.metadata["high"], f.metadata["above"], f.metadata["below"])
            raise bad(f.name, rule + (" or null" if _type_of(f)[1] else ""))
    if hp.optimizer not in OPTIMIZERS:
        raise bad("optimizer", f"one of {', '.join(OPTIMIZERS)}")
    if hp.amp not in AMP_MODES:
        raise bad("amp", f"one of {', '.join(AMP_MODES)}")
    if hp.sync_bn not in SYNC_BN_MODES:
        raise bad("sync_bn", f"one of {', '.join(SYNC_BN_MODES)}")
    if hp.lr_scaling not in LR_SCALING:
        raise bad("lr_scaling", f"one of {', '.join(LR_SCALING)}")
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
    return resolve(source, defaults, overrides)[0]


def resolve(source: str | Path | None, defaults: dict[str, Any] | None = None,
            overrides: dict[str, Any] | None = None,
            defaults_label: str = "model default") -> tuple[Hyperparameters, dict[str, str]]:
    """`parse`, plus where each value came from: "default", `defaults_label`, "hyperparameters" or "--flag".

    Raises TrainingError naming the key for bad YAML, unknown keys, wrong types and out-of-range values.
    """
    data = read_mapping(source)
    known = {f.name: f for f in fields(Hyperparameters)}
    merged: dict[str, Any] = {}
    sources = {name: "default" for name in known}
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    for layer, label in ((defaults or {}, defaults_label), (data, "hyperparameters"), (flags, None)):
        for name, value in layer.items():
            before = merged.get(name)
            merged[name] = _coerce(name, value, known[name])
            source = label
            if source is None:  # a flag: the template's form field, when the image runs in a workflow
                flag = "--" + name.replace("_", "-")
                source = f"hyperparameters and {flag}" if name in data and before == merged[name] else flag
            sources[name] = source
    hp = Hyperparameters(**merged)
    _check(hp)
    return hp, sources


def read_mapping(source: str | Path | None) -> dict[str, Any]:
    """The YAML mapping of `source` (text or file), its keys checked against the schema; values as YAML typed them."""
    text = read_text(source)
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except ValueError:  # Python refuses to parse integers of more than 4,300 digits
        raise TrainingError("hyperparameters: a number has too many digits (give a value within the key's "
                            "range)") from None
    except RecursionError:  # thousands of nested brackets: PyYAML's parser recurses per level
        raise TrainingError("hyperparameters: YAML nested too deeply to read (write one `key: value` per "
                            "line)") from None
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
    known = [f.name for f in fields(Hyperparameters)]
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise TrainingError(f"hyperparameters: unknown key{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)} (known keys: {', '.join(known)})")
    return data


def annotated_yaml(hp: Hyperparameters, sources: dict[str, str]) -> str:
    """The effective hyperparameters as YAML, each line ending in `# <source>`; `parse` reads it back."""
    lines = []
    for name, value in hp.to_dict().items():
        line = yaml.safe_dump({name: value}, default_flow_style=False).rstrip("\n")
        lines.append(f"{line}  # {sources.get(name, 'default')}")
    return "\n".join(lines) + "\n"
