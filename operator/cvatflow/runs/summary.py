"""The closing lines of a finished run (name, time, metric, model, report, logs): `make demo` and `run --wait`."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cvatflow.errors import CvatflowError


def final_metrics(run, client=None) -> dict[str, Any]:
    """The best model's final metrics (`report/metrics.json`, read through the client's store when the report
    lies in it), else the latest validation metrics of the run's events; {} when there are none.
    Keys as the training writes them: `mAP`, `AP50`, `AP75` (COCO box AP, 0..1), ..."""
    report = run.outputs().get("report", "")
    store_uri = getattr(getattr(client, "settings", None), "store", "") or ""
    root = store_uri.rstrip("/") + "/"
    if store_uri and report.startswith(root):
        try:
            data = json.loads(client.store.get_bytes(report[len(root):] + "metrics.json"))
            return dict(data.get("final", data))
        except (CvatflowError, ValueError, AttributeError):
            pass  # not written, or unreadable: the events still say what the run reached
    return dict(run.metrics().val)


def minutes(status) -> float | None:
    """Minutes from the run's start to its end (RFC 3339 times, as Argo writes them), or None if unknown."""
    try:
        start = datetime.fromisoformat(status.started_at)
        end = datetime.fromisoformat(status.finished_at)
    except (AttributeError, TypeError, ValueError):
        return None
    return (end - start).total_seconds() / 60


def closing_lines(run, status, metrics: dict[str, Any], elapsed: float | None = None) -> list[str]:
    """`run:`, the metric line (`mAP:`, `NoC@90:`, ...: `metric_line`), `model:`, `report:` and `logs:` lines;
    local `file://` URIs shown as paths.
    `elapsed` (minutes) overrides the run's own start-to-end time (the demo counts its set-up too)."""
    elapsed = minutes(status) if elapsed is None else elapsed
    took = f" in {elapsed:.1f} min" if elapsed is not None else ""
    lines = [f"run:      {run.name} ({status.phase}{took})", metric_line(metrics)]
    outputs = run.outputs()
    for key in ("model", "report"):
        if key in outputs:
            lines.append(f"{key + ':':9} {_path(outputs[key])}")
    folder = getattr(run, "dir", None)
    lines.append(f"logs:     {folder / 'logs'}" if folder is not None else
                 f"logs:     cvatflow runs logs {run.name}")
    return lines


# The metric a model is judged by, then what is shown beside it: COCO AP (0..1) for detection and instance
# segmentation; for the Smart Tool's interactive segmentation (smarttool-training) the mean number of clicks to
# reach 90% IoU (NoC@90, fewer is better; Xu et al. 2016) and the mean IoU after k clicks (training/interactive.py).
HEADLINES = {"mAP": ("AP50", "AP75"), "NoC@90": ("NoC@85", "mIoU@1", "mIoU@5")}


def metric_line(metrics: dict[str, Any]) -> str:
    """The closing line of a run's validation result: its headline metric (HEADLINES) and those beside it, else
    every number the run reported (a model this list does not know), else that it reported none."""
    numbers = _numbers(metrics)
    key = _headline_key(numbers)
    if key is not None:
        shown = ", ".join(f"{k} {_number(k, numbers[k])}" for k in HEADLINES[key] if k in numbers)
        return (f"{key + ':':9} {_number(key, numbers[key])}" + (f"  ({shown})" if shown else "")
                + " on the validation split")
    if numbers:
        return "metrics:  " + ", ".join(f"{k} {_number(k, v)}" for k, v in numbers.items()) \
            + " on the validation split"
    return "metrics:  none reported (the run wrote no validation metrics)"


def headline(metrics: dict[str, Any]) -> str:
    """`mAP 0.412` or `NoC@90 3.50`: the headline metric of a validation (a watcher's view), "" without one."""
    numbers = _numbers(metrics)
    key = _headline_key(numbers)
    return f"{key} {_number(key, numbers[key])}" if key is not None else ""


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "best_step"}


def _headline_key(numbers: dict[str, float]) -> str | None:
    return next((key for key in HEADLINES if key in numbers), None)


def _number(key: str, value: float) -> str:
    return f"{value:.2f}" if key.startswith("NoC") else f"{value:.3f}"  # clicks; AP and IoU are 0..1


def _path(uri: str) -> str:
    return uri.removeprefix("file://")
