"""The one rule for where a run's outputs go: `<prefix>/task-<id>/` per CVAT task unless the user chose a prefix."""
from __future__ import annotations

DEFAULT_PREFIX = "outputs"


def task_output_path(task_id: int | str | None, given: str | None, default: str | None = None) -> str | None:
    """The `cvat-output-path` value for a run; the run's `/mnt/output` then lands at `<value>/<run name>/`.

    `given` is the user's value (None: not sent), `default` the template's default. For a CVAT task, the
    per-task folder `<prefix>/task-<id>` is used when nothing was sent, when the value sent is the template's
    default or empty (the Onepanel fork's dialog sends every parameter at its default), or when it already
    names this task's folder; any other value is what the user asked for and is kept. Without a task the
    value is left as it is (None: the template's default applies). Slashes at either end are dropped.
    """
    if task_id is None:
        return given
    folder = f"task-{task_id}"
    base = (default or DEFAULT_PREFIX).strip("/") or DEFAULT_PREFIX
    if given is None:
        return f"{base}/{folder}"
    value = given.strip().strip("/")
    if value in ("", base):
        return f"{base}/{folder}"
    return value
