"""An SQLite index of the local runs (one row per run folder), so listing 10,000 runs reads one file."""
from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

INDEX_FILE = "index.sqlite3"
log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    phase TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL DEFAULT '',
    started_at TEXT,
    finished_at TEXT,
    message TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
"""
# Index files whose schema this process has made.
_READY: set[Path] = set()
COLUMNS = ("name", "template", "phase", "progress", "created_at", "started_at", "finished_at", "message", "labels")
_INSERT = f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


class RunIndex:
    """The index at `<runs_dir>/index.sqlite3`; the run folders stay the truth, the index is rebuilt from them
    for any folder it lacks (`sync`), so deleting the file loses nothing."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self.path = self.runs_dir / INDEX_FILE

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one transaction: committed on success, rolled back on error, closed either way
        (`with sqlite3.connect()` alone commits but leaves the connection open). The schema is made once per
        index file and process, not at every status write."""
        ready = self.path in _READY and self.path.exists()  # a deleted index is made again
        if not ready:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            if not ready:
                db.execute("PRAGMA journal_mode=WAL")  # persistent: readers never wait for the executors writing
                db.executescript(_SCHEMA)
                _READY.add(self.path)
            with db:
                yield db
        finally:
            db.close()

    def update(self, workflow: dict[str, Any], status: dict[str, Any]) -> None:
        """Record one run's row from its workflow.json and status.json contents. An index that cannot be
        written is logged, never fatal: the run's own files are what counts, and `sync` repairs the row."""
        try:
            with self._connect() as db:
                db.execute(_INSERT, _row(workflow, status))
        except sqlite3.Error as exc:
            log.warning("runs index %s not updated for %s: %s", self.path, workflow.get("name"), exc)

    def remove(self, name: str) -> None:
        try:
            with self._connect() as db:
                db.execute("DELETE FROM runs WHERE name = ?", (name,))
        except sqlite3.Error as exc:
            log.warning("runs index %s: %s not removed: %s", self.path, name, exc)

    def rows(self) -> list[dict[str, Any]]:
        """Every run folder's row, newest first; folders the index lacks are indexed now, rows whose folder
        is gone are dropped."""
        on_disk = {e.name for e in os.scandir(self.runs_dir) if e.is_dir() and not e.name.startswith(".")} \
            if self.runs_dir.exists() else set()
        with self._connect() as db:
            found = {r[0]: dict(zip(COLUMNS, r, strict=True))
                     for r in db.execute(f"SELECT {', '.join(COLUMNS)} FROM runs")}
            for name in set(found) - on_disk:
                db.execute("DELETE FROM runs WHERE name = ?", (name,))
                del found[name]
        for name in on_disk - set(found):
            row = self._index_folder(self.runs_dir / name)
            if row is not None:
                found[name] = row
        rows = list(found.values())
        for row in rows:
            row["labels"] = json.loads(row["labels"] or "{}")
        return sorted(rows, key=lambda r: r["created_at"], reverse=True)

    def _index_folder(self, run_dir: Path) -> dict[str, Any] | None:
        try:
            workflow = json.loads((run_dir / "workflow.json").read_text())
            status = json.loads((run_dir / "status.json").read_text())
        except (OSError, ValueError):
            return None  # not a run folder, or one still being laid out
        self.update(workflow, status)
        return dict(zip(COLUMNS, _row(workflow, status), strict=True))


def _row(workflow: dict[str, Any], status: dict[str, Any]) -> tuple:
    return (workflow["name"], workflow.get("template", ""), str(status.get("phase") or "Pending"),
            status.get("progress") or "", workflow.get("createdAt") or "", status.get("startedAt"),
            status.get("finishedAt"), status.get("message") or "", json.dumps(workflow.get("labels") or {}))
