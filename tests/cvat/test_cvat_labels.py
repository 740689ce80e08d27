"""The classes of a CVAT task are its drawable labels: tag labels and skeleton points are not counted."""
from __future__ import annotations

from cvatflow.cvat import CvatClient
from fake_cvat import FakeCvat, FakeTask


def test_tag_labels_are_not_classes():
    task = FakeTask(id=9, labels=["circle", "square", "triangle", "val"], label_types={"val": "tag"}, images=1)
    with FakeCvat(tasks=[task]) as cvat, CvatClient(cvat.url, cvat.token) as client:
        assert client.labels(9) == ["circle", "square", "triangle"]
