"""The closing lines of a finished run (name, time, mAP, model, report, logs): `make demo` and `run --wait`."""
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
    """`run:`, `mAP:`, `model:`, `report:` and `logs:` lines; local `file://` URIs shown as paths.
    `elapsed` (minutes) overrides the run's own start-to-end time (the demo counts its set-up too)."""
    elapsed = minutes(status) if elapsed is None else elapsed
    took = f" in {elapsed:.1f} min" if elapsed is not None else ""
    lines = [f"run:      {run.name} ({status.phase}{took})"]
    if "mAP" in metrics:
        nan = float("nan")
        lines.append(f"mAP:      {metrics['mAP']:.3f}  (AP50 {metrics.get('AP50', nan):.3f}, "
                     f"AP75 {metrics.get('AP75', nan):.3f}) on the validation split")
    else:
        lines.append("mAP:      none reported (the run wrote no validation metrics)")
    outputs = run.outputs()
    for key in ("model", "report"):
        if key in outputs:
            lines.append(f"{key + ':':9} {_path(outputs[key])}")
    folder = getattr(run, "dir", None)
    lines.append(f"logs:     {folder / 'logs'}" if folder is not None else
                 f"logs:     cvatflow runs logs {run.name}")
    return lines


def _path(uri: str) -> str:
    return uri.removeprefix("file://")
