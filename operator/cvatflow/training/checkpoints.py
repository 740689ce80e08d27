"""Training checkpoints in `<output>/checkpoints/`: last (for resume), best, and a few numbered ones."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from cvatflow import events
from cvatflow.errors import TrainingError

LAST, BEST = "last.pt", "best.pt"


def save(path: Path, payload: dict[str, Any]) -> int:
    """torch.save under a temporary name, then rename, so a kill never leaves half a checkpoint."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path.stat().st_size


def load(path: Path) -> dict[str, Any]:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: say which and what to do
        raise TrainingError(f"{path}: cannot read the checkpoint ({exc}); delete it to start over") from None


class Checkpoints:
    """Writes checkpoints and reports them as checkpoint events (paths relative to the output folder)."""

    def __init__(self, output: Path, keep: int = 3):
        self.output, self.folder, self.keep = Path(output), Path(output) / "checkpoints", keep
        self.count = len(self.numbered())
        self.last_saved = time.monotonic()  # a fresh start has nothing to lose yet

    def numbered(self) -> list[Path]:
        return sorted(self.folder.glob("step_*.pt")) if self.folder.is_dir() else []

    def last(self) -> Path | None:
        path = self.folder / LAST
        return path if path.is_file() else None

    def save_last(self, payload: dict[str, Any]) -> None:
        save(self.folder / LAST, payload)
        self.last_saved = time.monotonic()

    def seconds_since_last(self) -> float:
        """Seconds since last.pt was written by this process (or since it started)."""
        return time.monotonic() - self.last_saved

    def save_numbered(self, step: int, payload: dict[str, Any], best_now: bool, metrics: dict[str, float]) -> Path:
        """A numbered checkpoint (and best.pt when it is the best so far); old numbered ones beyond `keep` go."""
        path = self.folder / f"step_{step:08d}.pt"
        size = save(path, payload)
        if best_now:
            tmp = self.folder / f".{BEST}.tmp-{os.getpid()}"
            shutil.copyfile(path, tmp)
            os.replace(tmp, self.folder / BEST)
        self.count += 1
        events.emit(events.checkpoint(self.count, str(path.relative_to(self.output)), size, best_now,
                                      {"step": step, **metrics}))
        for old in self.numbered()[:-self.keep] if self.keep else self.numbered():
            old.unlink()
        return path
