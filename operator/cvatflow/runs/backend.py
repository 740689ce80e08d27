"""The one interface every execution backend implements: local, kubernetes and argo-server."""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cvatflow.params import Filled
    from cvatflow.runs.run import Run
    from cvatflow.templates.template import Template


@runtime_checkable
class Backend(Protocol):
    """Where templates are read from and runs go; `Client` talks to one, whichever it is.

    Backends receive a prepared submission (`cvatflow.submission` filled and checked it); they only
    translate it into their own calls, and read runs back as `Run` handles.
    """

    def templates(self, labels: dict[str, str] | None = None) -> list[Template]:
        """The templates offered, those carrying every label in `labels`."""

    def get_template(self, name: str) -> Template:
        """One template by name; NotFoundError, with the fix, when there is none."""

    def submit(self, filled: Filled, name: str | None = None, output_prefix: str | None = None) -> Run:
        """Start a run of `filled` named `name` (default `<template>-<5 characters>`); `output_prefix` is the
        store URI its /mnt/output lands at, recorded on the run."""

    def run(self, name: str) -> Run:
        """A run by name; NotFoundError when there is none."""

    def runs(self, labels: dict[str, str] | None = None) -> list[Run]:
        """Runs started by cvatflow carrying every label in `labels`, newest first."""
