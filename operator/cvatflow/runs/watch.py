"""A live terminal view of a run: phase, steps, epoch, step, loss and its headline metric (mAP, NoC@90)."""
from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from cvatflow.argo import Phase
from cvatflow.events import Summary
from cvatflow.runs.run import Run, RunStatus
from cvatflow.runs.summary import headline

COLOURS = {Phase.SUCCEEDED: "green", Phase.FAILED: "red", Phase.ERROR: "red", Phase.RUNNING: "cyan",
           Phase.PENDING: "yellow", Phase.SKIPPED: "dim", Phase.OMITTED: "dim"}


def view(status: RunStatus, summary: Summary) -> Group:
    colour = COLOURS.get(status.phase, "white")
    head = Table.grid(padding=(0, 2))
    head.add_row(f"[bold]{status.name}[/bold]", status.template, f"[{colour}]{status.phase}[/{colour}]",
                 status.progress)
    steps = Table("step", "phase", "started", "finished", box=None, padding=(0, 2))
    for step in status.steps:
        c = COLOURS.get(step.phase, "white")
        steps.add_row(step.name, f"[{c}]{step.phase}[/{c}]", step.started_at or "", step.finished_at or "")
    parts = [head, steps]
    if summary.epoch is not None or summary.step is not None:
        train = Table.grid(padding=(0, 2))
        loss = summary.train.get("loss")
        train.add_row(
            f"epoch {summary.epoch:g}" if summary.epoch is not None else "",
            f"step {summary.step}/{summary.total_steps}" if summary.step is not None else "",
            f"loss {loss:.4f}" if loss is not None else "",
            headline(summary.val),  # mAP, or NoC@90 for a Smart Tool run
            f"best mAP {summary.best_map:.3f}" if summary.best_map is not None else "",
        )
        parts.append(train)
        if summary.progress is not None:
            # In a grid row: a bare ProgressBar ends without a newline, so what is printed next joined its line.
            bar = Table.grid()
            bar.add_row(ProgressBar(total=1.0, completed=summary.progress, width=60))
            parts.append(bar)
    if status.message and status.done:
        parts.append(f"[{colour}]{status.message}[/{colour}]")
    return Group(*parts)


def plain_line(status: RunStatus, summary: Summary) -> str:
    """One line of plain text: name, phase, progress, steps, then epoch, step, loss and mAP once training reports
    them (what `runs watch` prints when its output is a file or a pipe)."""
    parts = [status.name, status.phase, status.progress, *(f"{s.name}={s.phase}" for s in status.steps)]
    if summary.epoch is not None:
        parts.append(f"epoch {summary.epoch:g}")
    if summary.step is not None:
        parts.append(f"step {summary.step}/{summary.total_steps}")
    if summary.train.get("loss") is not None:
        parts.append(f"loss {summary.train['loss']:.4f}")
    parts.append(headline(summary.val))
    if status.message and status.done:
        parts.append(f"({status.message})")
    return " ".join(p for p in parts if p)


def watch(run: Run, console: Console | None = None, poll: float = 1.0, timeout: float | None = None) -> RunStatus:
    """Show the run until it ends (or `timeout` seconds pass) and return its last status; on a terminal a live
    view, otherwise one plain line per change (`plain_line`)."""
    console = console or Console()
    deadline = None if timeout is None else time.monotonic() + timeout
    if not console.is_terminal:
        last = None
        while True:
            status = run.status()
            line = plain_line(status, run.metrics())
            if line != last:
                console.print(line, markup=False, highlight=False, soft_wrap=True)
                last = line
            if status.done or (deadline is not None and time.monotonic() > deadline):
                return status
            time.sleep(poll)
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            status = run.status()
            live.update(view(status, run.metrics()))
            if status.done or (deadline is not None and time.monotonic() > deadline):
                return status
            time.sleep(poll)
