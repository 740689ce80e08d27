"""`cvatflow run` and `cvatflow runs list|get|logs|watch|outputs`: start and follow workflow runs."""
from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape

from cvatflow.argo import Phase
from cvatflow.errors import CvatflowError
from cvatflow.one_value import from_annotations

runs_app = typer.Typer(help="Follow and manage workflow runs: list, get, logs, watch, outputs, stop, terminate, "
                            "retry, resubmit, delete, prune.", no_args_is_help=True)
console = Console()


def _client(local: bool = False, kube: bool = False, argo_server: str | None = None):
    from cvatflow.runs.client import Client

    if sum(bool(x) for x in (local, kube, argo_server)) > 1:
        raise CvatflowError("choose one of --local, --kube and --argo-server")
    backend = "local" if local else "kubernetes" if kube else "argo-server" if argo_server else None
    return Client(backend, argo_server_url=argo_server)


def _labels(items: list[str]) -> dict[str, str]:
    from cvatflow.params import parse_assignments

    return parse_assignments(items or [], option="--label")


def run(
    template: str = typer.Argument(..., help="Template name (built-in or on the cluster) or a template YAML file."),
    data: str | None = typer.Option(None, "--data", help="A CVAT export (zip or folder) or a dataset URI."),
    cvat_task: int | None = typer.Option(None, "--cvat-task", help="Dump this CVAT task (CVAT_URL, token)."),
    param: list[str] = typer.Option([], "-p", "--param", help="Parameter as name=value; repeat for more."),
    label: list[str] = typer.Option([], "--label", help="Label on the run as key=value."),
    name: str | None = typer.Option(None, "--name", help="Run name (default: <template>-<random>)."),
    local: bool = typer.Option(False, "--local", help="Run on this machine (the default with no cluster)."),
    kube: bool = typer.Option(False, "--kube", help="Submit through the Kubernetes API."),
    argo_server: str | None = typer.Option(None, "--argo-server", help="Submit through this Argo Server."),
    wait: bool = typer.Option(False, "--wait", help="Follow the run until it ends; exit 1 unless it succeeds."),
) -> None:
    """Run a template on a CVAT task or a dataset."""
    from cvatflow.params import parse_assignments
    from cvatflow.runs.watch import watch

    client = _client(local, kube, argo_server)
    started = client.execute(template, cvat_task=cvat_task, dataset=data, parameters=parse_assignments(param),
                             labels=_labels(label), name=name)
    console.print(f"started [bold]{started.name}[/bold] ({client.kind}); follow it with "
                  f"`cvatflow runs watch {started.name}`", soft_wrap=True)
    if wait:
        status = watch(started, console)
        if status.phase != Phase.SUCCEEDED:
            _print_failure(status)  # no outputs: a failed run's output folders were never (fully) written
            raise typer.Exit(1)
        _print_closing(client, started, status)


def _print_closing(client, run_, status) -> None:
    """Like the demo's end: the run and its time, the mAP, where the model, the report and the logs are."""
    from cvatflow.runs.summary import closing_lines, final_metrics

    console.rule("done")
    for line in closing_lines(run_, status, final_metrics(run_, client)):
        console.print(escape(line), highlight=False, soft_wrap=True)


def _print_failure(status) -> None:
    """Which step failed and why, as `runs get` shows it, and where to read its log."""
    from rich.markup import escape

    failed = [s for s in status.steps if s.phase in (Phase.FAILED, Phase.ERROR)]
    console.print(f"[red]{escape(status.name)} {escape(status.phase)}[/red]"
                  + (f": {escape(status.message)}" if status.message else ""), highlight=False)
    for step in failed:
        console.print(f"  failed step [bold]{escape(step.name)}[/bold]: {escape(step.message or step.phase)}; "
                      f"see `cvatflow runs logs {escape(status.name)} --step {escape(step.name)}`", highlight=False)


def _print_outputs(run, outputs: dict[str, str] | None = None) -> None:
    """The run's output URIs, one per line; `outputs` when the caller read them already (a cluster asks the API)."""
    for key, uri in (run.outputs() if outputs is None else outputs).items():
        console.print(f"  {key:14} {escape(uri)}", highlight=False, soft_wrap=True)


def _find(name: str, local: bool, kube: bool, argo_server: str | None):
    return _client(local, kube, argo_server).run(name)


Local = typer.Option(False, "--local", help="Look at local runs (the default with no cluster).")
Kube = typer.Option(False, "--kube", help="Look at runs on the Kubernetes cluster.")
ArgoServer = typer.Option(None, "--argo-server", help="Look at runs on this Argo Server.")


@runs_app.command("list")
def list_runs(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable: a list of runs, newest first."),
    template: str | None = typer.Option(None, help="Only runs of this template."),
    phase: str | None = typer.Option(None, help="Only runs in this phase."),
    label: list[str] = typer.Option([], "--label", help="Only runs with this label (key=value)."),
    local: bool = Local, kube: bool = Kube, argo_server: str | None = ArgoServer,
) -> None:
    """List runs, newest first."""
    # statuses(): the local backend answers from its index instead of reading every run folder.
    rows = [s for s in _client(local, kube, argo_server).statuses(_labels(label))
            if not ((template and s.template != template) or (phase and s.phase != phase))]
    if as_json:
        typer.echo(json.dumps([_summary(s) for s in rows], indent=2))
        return
    # Plain aligned columns, as kubectl prints them: names whole (they are what `runs watch` and `runs get`
    # take), however narrow the terminal; a long line wraps instead of being cut.
    table = [("NAME", "TEMPLATE", "PHASE", "PROGRESS", "STARTED", "FINISHED")]
    table += [(s.name, s.template, s.phase, s.progress, s.started_at or "", s.finished_at or "") for s in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        console.print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
                      markup=False, highlight=False, soft_wrap=True)


def _summary(status) -> dict:
    return {"name": status.name, "template": status.template, "phase": status.phase,
            "progress": status.progress, "startedAt": status.started_at, "finishedAt": status.finished_at,
            "message": status.message, "labels": status.labels}


@runs_app.command()
def get(name: str, as_json: bool = typer.Option(False, "--json"),
        local: bool = Local, kube: bool = Kube, argo_server: str | None = ArgoServer) -> None:
    """Show one run: phase, steps, latest metrics and outputs."""
    run_ = _find(name, local, kube, argo_server)
    status = run_.status()
    summary = run_.metrics()
    if as_json:
        data = _summary(status) | {
            "steps": [s.__dict__ for s in status.steps], "parameters": status.parameters,
            "metrics": {"epoch": summary.epoch, "step": summary.step, "totalSteps": summary.total_steps,
                        "train": summary.train, "val": summary.val, "bestMAP": summary.best_map},
            "outputs": run_.outputs(), "hyperparameters": from_annotations(status.annotations)}
        typer.echo(json.dumps(data, indent=2))
        return
    from cvatflow.runs.watch import view

    console.print(view(status, summary))
    _print_settings(status.annotations)
    if found := run_.outputs():
        console.print("outputs:")  # else they read as more hyperparameters, indented alike
        _print_outputs(run_, found)


def _print_settings(annotations: dict[str, str]) -> None:
    """The effective hyperparameters the run was submitted with, each with its source."""
    settings = from_annotations(annotations)
    if settings:
        console.print("hyperparameters (value, source):")
        for key, setting in settings.items():
            console.print(f"  {escape(str(key))}: {escape(str(setting.get('value')))}  "
                          f"[dim]({escape(str(setting.get('source')))})[/dim]", highlight=False)


@runs_app.command()
def logs(name: str, step: str | None = typer.Option(None, help="Only this step's log."),
         local: bool = Local, kube: bool = Kube, argo_server: str | None = ArgoServer) -> None:
    """Print a run's logs."""
    typer.echo(_find(name, local, kube, argo_server).logs(step), nl=False)


@runs_app.command("watch")
def watch_run(name: str, local: bool = Local, kube: bool = Kube,
              argo_server: str | None = ArgoServer) -> None:
    """Follow a run live (epoch, step, loss, mAP) until it ends."""
    from cvatflow.runs.watch import watch

    run_ = _find(name, local, kube, argo_server)
    status = watch(run_, console)
    _print_outputs(run_)
    if status.phase != Phase.SUCCEEDED:
        raise typer.Exit(1)


@runs_app.command()
def outputs(name: str, local: bool = Local, kube: bool = Kube,
            argo_server: str | None = ArgoServer) -> None:
    """Print the URIs of a run's model/, checkpoints/, report/..."""
    run_ = _find(name, local, kube, argo_server)
    if not run_.outputs():
        raise CvatflowError(f"run {name} has no outputs yet")
    _print_outputs(run_)


@runs_app.command()
def stop(name: str, local: bool = Local, kube: bool = Kube, argo_server: str | None = ArgoServer) -> None:
    """Stop a run as Argo does: no new step starts, the running one is asked to end (training keeps last.pt)."""
    _find(name, local, kube, argo_server).stop()
    console.print(f"stopping {escape(name)}; follow it with `cvatflow runs watch {escape(name)}`", highlight=False)


@runs_app.command()
def terminate(name: str, local: bool = Local, kube: bool = Kube, argo_server: str | None = ArgoServer) -> None:
    """Terminate a run now (Argo's terminate: no exit handlers)."""
    _find(name, local, kube, argo_server).terminate()
    console.print(f"terminating {escape(name)}; follow it with `cvatflow runs watch {escape(name)}`",
                  highlight=False)


@runs_app.command()
def retry(name: str, local: bool = Local, kube: bool = Kube, argo_server: str | None = ArgoServer) -> None:
    """Run a Failed or Error run's failed steps again, keeping those that succeeded (training resumes)."""
    _find(name, local, kube, argo_server).retry()
    console.print(f"retrying {escape(name)}; follow it with `cvatflow runs watch {escape(name)}`", highlight=False)


@runs_app.command()
def resubmit(name: str, new_name: str | None = typer.Option(None, "--name", help="The new run's name."),
             local: bool = Local, kube: bool = Kube, argo_server: str | None = ArgoServer) -> None:
    """Start a new run with the same template, parameters and labels."""
    client = _client(local, kube, argo_server)
    started = client.resubmit(client.run(name), new_name)
    console.print(f"started [bold]{escape(started.name)}[/bold] (resubmitted {escape(name)}); follow it with "
                  f"`cvatflow runs watch {escape(started.name)}`", highlight=False, soft_wrap=True)


@runs_app.command()
def delete(name: str,
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
           with_outputs: bool = typer.Option(False, "--outputs", help="Also delete its outputs in the store."),
           local: bool = Local, kube: bool = Kube, argo_server: str | None = ArgoServer) -> None:
    """Delete a run (terminated first if still going); its outputs in the store stay unless --outputs."""
    client = _client(local, kube, argo_server)
    run_ = client.run(name)
    what = f"run {name}" + (" and its outputs in the store" if with_outputs else " (its outputs stay)")
    if not yes and not (_interactive() and typer.confirm(f"delete {what}?", default=False)):
        raise CvatflowError(f"not deleted; confirm, or pass --yes: `cvatflow runs delete {name} --yes`")
    removed = client.delete(run_, outputs=with_outputs)
    console.print(f"deleted {escape(name)}" + (f" and {removed} output object(s)" if with_outputs else ""),
                  highlight=False)


@runs_app.command()
def prune(older_than: str = typer.Option(..., "--older-than", help="Age of finished runs to remove: 30d, 12h, "
                                                                       "90m or seconds."),
          with_outputs: bool = typer.Option(False, "--outputs", help="Also delete their outputs in the store."),
          dry_run: bool = typer.Option(False, "--dry-run", help="Only print what would be removed.")) -> None:
    """Remove local run folders of runs that finished longer ago than --older-than (never running ones)."""
    client = _client(local=True)
    names = client.backend.prune(_seconds(older_than), outputs=with_outputs, dry_run=dry_run)
    for name in names:
        console.print(("would remove " if dry_run else "removed ") + escape(name), highlight=False)
    console.print(f"{len(names)} run(s) {'to remove' if dry_run else 'removed'}"
                  + ("; their outputs in the store stay" if not with_outputs else ""), highlight=False)


def _interactive() -> bool:
    import sys

    try:
        return sys.stdin.isatty()
    except (AttributeError, OSError, ValueError):
        return False


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise CvatflowError(f"--older-than {text!r}: give an age such as 30d, 12h, 90m or a number of seconds")
    return seconds


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.add_typer(runs_app, name="runs")


__all__ = ["register"]
