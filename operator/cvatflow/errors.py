"""The one family of exceptions cvatflow raises: each names the input, what is wrong, and the fix.

Every exception class of cvatflow is defined here (other modules re-export the ones they raise)::

    Exception
    ├── CvatflowError                400  the CLI prints one red line and exits 1; the API answers status_code
    │   ├── TemplateError                 a template or manifest that cannot be read, built or rendered
    │   ├── ParameterError           422  a parameter value that is missing or does not fit
    │   ├── ProblemsError            422  several Problems found at once (validation), all of them listed
    │   ├── StorageError                  an object-store URI, credential or transfer problem
    │   ├── NotFoundError            404  a template, run, task or store prefix that does not exist
    │   ├── ConflictError            409  the thing named is in the wrong state (a run name taken)
    │   ├── DatasetError                  an export that is unsafe, malformed or in an unknown format
    │   ├── CvatError                     CVAT refused a request or answered something unexpected
    │   │   ├── CvatUnreachable      502  CVAT does not answer at its URL
    │   │   ├── CvatAuthError        502  CVAT refused the token
    │   │   ├── CvatVersionError     502  a CVAT version the installed cvat-sdk cannot talk to
    │   │   └── CvatNotFound         404  no such task on the CVAT server
    │   ├── TrainingError                 a training input (data, hyperparameters, checkpoint) that cannot be used
    │   ├── RunError                      a run that cannot be submitted, found or followed
    │   │   ├── StepFailed                a local step could not run or exited non-zero
    │   │   └── RunFailed                 Run.wait(): the run ended Failed or Error (its status attached)
    │   ├── ConfigError                   a setting that cannot be used
    │   ├── JsonTooLarge             413  a JSON document over the size or depth limit
    │   └── UploadTooLarge           413  an uploaded export over the maxUploadBytes setting
    ├── Retry                             not an error: the operator's "record this status, try again later"
    └── ValueError
        └── SelectorError                 a Kubernetes label selector (a resource step's condition) that does not parse

`codes()` lists them with their HTTP status for the web UI (GET /api/v1/vocabulary).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class CvatflowError(Exception):
    """A bad input or a failed operation, explained in one line a user can act on.

    The CLI prints it as one red line and exits 1; the HTTP API turns it into a 4xx answer.
    """

    #: HTTP status the API answers with when this error reaches it; a subclass sets its own as a class
    #: keyword (`class NotFoundError(CvatflowError, status_code=404)`) or inherits its parent's.
    status_code = 400

    def __init_subclass__(cls, status_code: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status_code is not None:
            cls.status_code = status_code


class TemplateError(CvatflowError):
    """A workflow template or manifest that cannot be read, built or rendered."""


class ParameterError(CvatflowError, status_code=422):
    """A parameter value that is missing or does not fit its declaration."""


class StorageError(CvatflowError):
    """An object-store URI, credential or transfer problem."""


class NotFoundError(CvatflowError, status_code=404):
    """Something named by the user does not exist (template, run, object-store prefix)."""


class DatasetError(CvatflowError):
    """A dataset export that is unsafe, malformed or in an unknown format."""


class CvatError(CvatflowError):
    """The CVAT server refused a request or answered something unexpected."""


class TrainingError(CvatflowError):
    """A training input (data, hyperparameters, checkpoint) that cannot be used."""


class RunError(CvatflowError):
    """A workflow run that cannot be submitted, found or followed."""


class StepFailed(RunError):
    """A step could not run or exited non-zero; the message says which and why."""


class RunFailed(RunError):
    """A run that ended Failed or Error: which step failed, its message, and where its log is (`status`: the
    run's RunStatus)."""

    def __init__(self, status: Any) -> None:
        self.status = status
        failed = [s for s in status.steps if s.phase in ("Failed", "Error")]
        text = f"run {status.name} ended {status.phase}" + (f": {status.message}" if status.message else "")
        for step in failed:
            text += (f"; step {step.name} {step.phase}: {step.message or step.phase} "
                     f"(`cvatflow runs logs {status.name} --step {step.name}`)")
        super().__init__(text)


class SelectorError(ValueError):
    """The text is no Kubernetes label selector; the message is labels.Parse's (templates/selector.py)."""


class ConflictError(CvatflowError, status_code=409):
    """The request is fine but the thing it names is in the wrong state (a run name taken, a run not done)."""


class ConfigError(CvatflowError):
    """A setting that cannot be used."""


class JsonTooLarge(CvatflowError, status_code=413):
    """A JSON document over the size limit (HTTP 413)."""


class UploadTooLarge(CvatflowError, status_code=413):
    """An uploaded export over the size limit (HTTP 413)."""


class CvatUnreachable(CvatError, status_code=502):
    """The CVAT server does not answer at its URL."""


class CvatAuthError(CvatError, status_code=502):
    """CVAT refused the access token (401) or the token may not see the resource (403)."""


class CvatVersionError(CvatError, status_code=502):
    """The CVAT server's version is one the installed cvat-sdk cannot talk to."""


class CvatNotFound(CvatError, status_code=404):
    """The task (or request) does not exist on the CVAT server."""


class Retry(Exception):
    """A step that may succeed later (CVAT or a Secret not reachable yet): status to record, then retry."""

    def __init__(self, message: str, status: dict[str, Any], delay: float = 30.0) -> None:
        super().__init__(message)
        self.status = status
        self.delay = delay


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


def codes() -> dict[str, int]:
    """Every CvatflowError class by name, with the HTTP status the API answers it with."""
    found: dict[str, int] = {}
    pending: list[type] = [CvatflowError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = int(cls.status_code)
        pending.extend(cls.__subclasses__())
    return dict(sorted(found.items()))
