"""The `cvatflow` command: gathers each package's sub-commands and turns errors into one red line."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from cvatflow.errors import CvatflowError, ProblemsError

app = typer.Typer(
    name="cvatflow",
    help="Train models from CVAT tasks with Argo WorkflowTemplates, on Kubernetes or on this machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each package owns its commands in its own `cli` module, so that teams work on separate files and
# `cvatflow --help` does not import torch. A module that defines `app` is added as a command group
# named by the key; one that defines `register(app)` adds top-level commands itself.
SUBCOMMANDS = {
    "templates": "cvatflow.templates.cli",
    "dataset": "cvatflow.datasets.cli",
    "model": "cvatflow.models.cli",
    "runs": "cvatflow.runs.cli",
    "serve": "cvatflow.api.cli",
    "operator": "cvatflow.controller.cli",
    "annotate": "cvatflow.auto_annotate_cli",
    "store": "cvatflow.storage.cli",
}


def _register() -> None:
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that part of cvatflow is not built yet
            raise
        if hasattr(module, "register"):
            module.register(app)
        else:
            app.add_typer(module.app, name=name)


@app.callback()
def _global_options(
    config: Path | None = typer.Option(
        None, "--config", metavar="FILE",
        help="Settings file for every command (default: $CVATFLOW_CONFIG, else <home>/config.yaml)."),
) -> None:
    """Train models from CVAT tasks with Argo WorkflowTemplates, on Kubernetes or on this machine."""
    if config is not None:
        from cvatflow.config import ConfigError

        if not config.is_file():
            raise ConfigError(f"--config {config}: no such file; give a settings YAML file")
        # Through the environment, so that every load_settings() (and each step a local run starts) reads it.
        os.environ["CVATFLOW_CONFIG"] = str(config.resolve())


_register()

err_console = Console(stderr=True)


def report(error: CvatflowError) -> None:
    """Print an error as red lines on stderr: one line, or one per problem."""
    if isinstance(error, ProblemsError):
        for problem in error.problems:
            colour = "red" if problem.severity == "error" else "yellow"
            err_console.print(f"[{colour}]{problem.severity}:[/{colour}] {error.source}: {problem}",
                              highlight=False, markup=True, soft_wrap=True)
    else:
        err_console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `cvatflow` script."""
    try:
        app(args=argv, prog_name="cvatflow")
    except CvatflowError as error:
        report(error)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]")
        sys.exit(130)


if __name__ == "__main__":
    main()
