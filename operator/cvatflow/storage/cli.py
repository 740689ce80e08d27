"""`cvatflow store`: pull, push and keep syncing folders from pods that Argo's artifacts do not reach (JobSet)."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import typer

from cvatflow.errors import NotFoundError, StorageError
from cvatflow.exit_status import shell_status

app = typer.Typer(help="Object store transfers for training pods outside Argo (multi-node JobSets).",
                  no_args_is_help=True)

STORE_HELP = "Store URI (default: CVATFLOW_STORE or the configured store)."


def _store(uri: str | None):
    from cvatflow.config import load_settings
    from cvatflow.storage import open_store

    settings = load_settings()
    return open_store(uri or settings.store, settings.artifact_repository)


@app.command()
def pull(key: str = typer.Argument(..., help="Key (prefix) in the store; empty with --missing-ok does nothing."),
         folder: Path = typer.Argument(..., help="Folder to download into."),
         missing_ok: bool = typer.Option(False, "--missing-ok", help="Nothing at KEY is not an error."),
         store: str = typer.Option(None, "--store", help=STORE_HELP)) -> None:
    """Download every object under KEY into FOLDER (a resumed run's checkpoints, the shared dataset)."""
    key = key.strip().strip("/")
    if not key:
        if missing_ok:
            typer.echo("no key given; nothing to pull")
            return
        raise StorageError("pull: the key is empty; give the store prefix to download")
    try:
        stats = _store(store).download_prefix(key, folder)
    except NotFoundError:
        if not missing_ok:
            raise
        typer.echo(f"nothing at {key}; starting without it")
        return
    typer.echo(f"pulled {stats.files} files from {key}")


@app.command()
def push(folder: Path = typer.Argument(..., help="Folder to upload."),
         key: str = typer.Argument(..., help="Key (prefix) in the store."),
         store: str = typer.Option(None, "--store", help=STORE_HELP)) -> None:
    """Upload FOLDER under KEY; unchanged files (same size and checksum) are skipped."""
    stats = _store(store).upload_dir(folder, key.strip("/"))
    typer.echo(f"pushed {stats.sent} files to {key} ({stats.skipped} unchanged)")


@app.command()
def tree(folder: Path = typer.Argument(..., help="Folder to describe.")) -> None:
    """Print how many files and bytes FOLDER holds (the dataset a multi-node run shares, in its log)."""
    if not folder.is_dir():
        raise NotFoundError(f"{folder}: no such folder")
    files = [p for p in folder.rglob("*") if p.is_file()]
    typer.echo(f"{folder}: {len(files)} files, {sum(p.stat().st_size for p in files)} bytes")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sync(ctx: typer.Context,
         folder: Path = typer.Argument(..., help="Folder the command writes (the run's output)."),
         key: str = typer.Argument(..., help="Key (prefix) it is mirrored to."),
         every: float = typer.Option(300.0, "--every", min=1.0, help="Seconds between uploads while it runs."),
         store: str = typer.Option(None, "--store", help=STORE_HELP)) -> None:
    """Run the command after `--`, uploading FOLDER to KEY every --every seconds and once when it ends.

    On a JobSet only rank 0 writes outputs, so every pod can run this: the others upload nothing new. A pod that
    is restarted pulls KEY/checkpoints back first (`pull --missing-ok`) and training resumes from last.pt.
    Exits with the command's exit status (128 + signal when a signal killed it, as a shell reports it).
    """
    command = list(ctx.args)
    if not command:
        raise StorageError("sync: give the command to run after `--`")
    target = _store(store)
    folder.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def upload() -> None:
        try:
            target.upload_dir(folder, key.strip("/"))
        except StorageError as exc:  # a failed periodic upload is retried next time; the final one must work
            print(f"sync: upload to {key} failed: {exc}", file=sys.stderr, flush=True)

    def loop() -> None:
        while not stop.wait(every):
            upload()

    try:
        process = subprocess.Popen(command)
    except OSError as exc:
        raise StorageError(f"sync: cannot run {command[0]!r}: {exc.strerror}") from None
    # Kubernetes stops a pod with SIGTERM: pass it on, then upload what the command wrote before it stopped.
    previous = signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGTERM))
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        code = process.wait()
    finally:
        stop.set()
        thread.join()
        signal.signal(signal.SIGTERM, previous)
    target.upload_dir(folder, key.strip("/"))
    raise typer.Exit(shell_status(code))  # a killed command: 137/143, as the pod's retryStrategy expects
