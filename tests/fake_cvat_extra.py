"""The fake CVAT with one task of synthetic shapes, as the API tests use it."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from fake_cvat import FakeCvat, FakeTask


@contextmanager
def cvat_with_task(task_id: int = 42, labels: tuple[str, ...] = ("circle", "square", "triangle"),
                   images: int = 4) -> Iterator[FakeCvat]:
    """A running fake CVAT holding task `task_id`; `.labels` are its label names.

    Its token is put in CVAT_ACCESS_TOKEN while it runs, where cvatflow reads the token from.
    """
    with FakeCvat(tasks=[FakeTask(id=task_id, name="shapes", labels=list(labels), images=images)]) as fake:
        fake.labels = list(labels)
        before = os.environ.get("CVAT_ACCESS_TOKEN")
        os.environ["CVAT_ACCESS_TOKEN"] = fake.token
        try:
            yield fake
        finally:
            if before is None:
                os.environ.pop("CVAT_ACCESS_TOKEN", None)
            else:
                os.environ["CVAT_ACCESS_TOKEN"] = before
