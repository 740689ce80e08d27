"""`cvatflow operator`: run the TrainingRun controller (kopf) against the current cluster."""
from __future__ import annotations

from typing import Annotated

import typer

from cvatflow.errors import CvatflowError


def operator(
    namespace: Annotated[list[str] | None, typer.Option(
        "--namespace", "-n", help="Watch this namespace (repeat for several); default: all.")] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Watch every namespace.")] = False,
    standalone: Annotated[bool, typer.Option(
        "--standalone", help="No peering: run exactly one replica (the chart's default).")] = False,
    liveness: Annotated[str, typer.Option(
        "--liveness", help="Serve a liveness probe, e.g. http://0.0.0.0:8080/healthz.")] = "",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every handler call.")] = False,
) -> None:
    """Run the operator: TrainingRuns become Argo Workflows whose state flows back into their status."""
    if namespace and all_namespaces:
        raise CvatflowError("--namespace and --all-namespaces exclude each other; give one")
    # kopf and the handlers are imported here, so `cvatflow --help` stays fast.
    import kopf

    import cvatflow.controller.handlers  # noqa: F401  (registers the handlers with kopf)

    kopf.configure(verbose=verbose)
    kopf.run(clusterwide=not namespace, namespaces=list(namespace or []), standalone=standalone,
             liveness_endpoint=liveness or None)


def register(app: typer.Typer) -> None:
    app.command("operator")(operator)
