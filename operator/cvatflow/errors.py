"""The one family of exceptions cvatflow raises: each names the input, what is wrong, and the fix."""
from __future__ import annotations

from dataclasses import dataclass, field


class CvatflowError(Exception):
    """A bad input or a failed operation, explained in one line a user can act on.

    The CLI prints it as one red line and exits 1; the HTTP API turns it into a 4xx answer.
    """

    #: HTTP status the API answers with when this error reaches it.
    status_code = 400


class TemplateError(CvatflowError):
    """A workflow template or manifest that cannot be read, built or rendered."""


class ParameterError(CvatflowError):
    """A parameter value that is missing or does not fit its declaration."""

    status_code = 422


class StorageError(CvatflowError):
    """An object-store URI, credential or transfer problem."""


class NotFoundError(CvatflowError):
    """Something named by the user does not exist (template, run, object-store prefix)."""

    status_code = 404


class DatasetError(CvatflowError):
    """A dataset export that is unsafe, malformed or in an unknown format."""


class CvatError(CvatflowError):
    """The CVAT server refused a request or answered something unexpected."""


class TrainingError(CvatflowError):
    """A training input (data, hyperparameters, checkpoint) that cannot be used."""


class RunError(CvatflowError):
    """A workflow run that cannot be submitted, found or followed."""


@dataclass(frozen=True)
class Problem:
    """One finding of a validation: where it is, what is wrong, and how to fix it."""

    path: str
    message: str
    fix: str = ""
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text} ({self.fix})" if self.fix else text


@dataclass
class ProblemsError(CvatflowError):
    """Several problems found at once; raised so that users see all of them, not just the first."""

    source: str
    problems: list[Problem] = field(default_factory=list)
    status_code: int = 422

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        errors = [p for p in self.problems if p.severity == "error"]
        head = f"{self.source}: {len(errors)} problem{'s' if len(errors) != 1 else ''}"
        return head + "".join(f"\n  - {p}" for p in errors)


def errors_only(problems: list[Problem]) -> list[Problem]:
    """The problems that block (warnings are reported but do not fail)."""
    return [p for p in problems if p.severity == "error"]
