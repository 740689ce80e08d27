"""cvatflow.cvat through cvat-sdk against the fake CVAT server (its answers checked against CVAT's OpenAPI)."""
from __future__ import annotations

import json
import logging
import zipfile
from datetime import datetime

import pytest
from pycocotools.coco import COCO

from cvatflow import cvat
from cvatflow.cvat import CvatAuthError, CvatClient, CvatNotFound, CvatUnreachable, TaskInfo, dump_task
from cvatflow.datasets.formats import DUMP_FORMATS
from cvatflow.errors import CvatError, CvatflowError, DatasetError
from cvatflow.storage import open_store
from fake_cvat import FakeCvat, FakeTask, schema_problems
from storage_fixtures import point_at, store_uri

STAMP = datetime(2026, 3, 15, 10, 30, 5)


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr(cvat, "STATUS_CHECK_SECONDS", 0.02)  # the fake finishes at the second poll


@pytest.fixture
def server():
    tasks = [FakeTask(id=7, name="shapes", labels=["circle", "square", "triangle"], images=4),
             FakeTask(id=8, name="in a project", labels=["car"], images=1, project_id=3, status="validation")]
    with FakeCvat(tasks=tasks) as fake:
        yield fake


@pytest.fixture
def client(server):
    with CvatClient(server.url, server.token) as c:
        yield c


def test_a_task_reads_with_its_labels(client):
    assert client.task(7) == TaskInfo(id=7, name="shapes", project_id=None, status="annotation", size=4,
                                      labels=["circle", "square", "triangle"])
    assert client.labels(8) == ["car"]
    assert [(t.id, t.project_id, t.status) for t in client.list_tasks()] == [(7, None, "annotation"),
                                                                              (8, 3, "validation")]


def test_tasks_are_listed_across_pages(monkeypatch):
    with FakeCvat(tasks=[FakeTask(id=i, images=0) for i in range(1, 24)]) as fake:
        assert [t.id for t in CvatClient(fake.url, fake.token).list_tasks()] == list(range(1, 24))


def test_annotation_counts_count_the_task_s_objects(client, server):
    assert client.annotation_counts(7) == len(server.shapes(7)) > 0
    assert client.annotations(7)["shapes"] == server.shapes(7)


def test_export_with_images_is_cvat_s_coco_layout(client, server, tmp_path):
    path = client.export(7, "COCO 1.0", tmp_path / "export.zip")
    names = zipfile.ZipFile(path).namelist()
    assert "annotations/instances_default.json" in names
    assert sorted(n for n in names if n.startswith("images/")) == [f"images/default/img_{i:04d}.jpg" for i in range(4)]
    assert ("POST", "/api/tasks/7/dataset/export") in server.calls
    assert server.calls.count(("GET", next(p for m, p in server.calls if p.startswith("/api/requests/")))) == 2


def test_export_without_images_has_annotations_only(client, tmp_path):
    names = zipfile.ZipFile(client.export(7, "COCO 1.0", tmp_path / "e.zip", include_images=False)).namelist()
    assert names == ["annotations/instances_default.json"]


def test_dump_task_exports_and_uploads_to_the_annotation_path(server, tmp_path):
    store = (tmp_path / "store").as_uri()
    prefix, labels = dump_task(server.url, 7, "cvat_coco", store, token=server.token, now=STAMP)
    assert prefix == "annotations/7/03152026103005/"
    assert labels == ["circle", "square", "triangle"]
    dataset = tmp_path / "store" / prefix
    coco = COCO(str(dataset / "annotations" / "instances_default.json"))
    assert len(coco.getAnnIds()) == len(server.shapes(7)) and len(coco.getImgIds()) == 4
    for image in coco.dataset["images"]:
        assert (dataset / "images" / image["file_name"]).is_file()


def test_dump_task_to_s3_and_in_another_format(server, tmp_path, monkeypatch, s3_server, gcs_server):
    point_at(monkeypatch, s3_server)
    uri = store_uri("s3", tmp_path, s3_server, gcs_server)
    prefix, _ = dump_task(server.url, 7, "cvat_yolo", uri, token=server.token, now=STAMP)
    store = open_store(uri)
    data = json.loads(store.get_bytes(prefix + "annotations/instances_default.json"))
    assert len(data["images"]) == 4 and len(data["annotations"]) == len(server.shapes(7))  # boxes survive YOLO


def test_unknown_dump_format_lists_valid_ones(server, tmp_path):
    with pytest.raises(DatasetError) as caught:
        dump_task(server.url, 7, "cvat_png", (tmp_path / "s").as_uri(), token=server.token)
    assert "'cvat_png'" in str(caught.value) and all(tag in str(caught.value) for tag in DUMP_FORMATS)
    assert server.calls == []  # refused before CVAT is asked anything


def test_a_bad_token_is_one_clear_error_that_never_shows_the_token(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CvatAuthError, match="refused the access token") as caught:
        dump_task(server.url, 7, "cvat_coco", (tmp_path / "s").as_uri(), token="secret-not-the-token")
    assert "secret-not-the-token" not in str(caught.value) + caplog.text
    assert isinstance(caught.value, CvatError) and not (tmp_path / "s" / "annotations").exists()


def test_no_token_is_refused_like_a_bad_one(server, monkeypatch):
    monkeypatch.delenv("CVAT_ACCESS_TOKEN", raising=False)
    with pytest.raises(CvatAuthError, match="CVAT_ACCESS_TOKEN"):
        CvatClient(server.url).task(7)


def test_the_token_comes_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", server.token)
    assert CvatClient(server.url).task(7).name == "shapes"


def test_a_legacy_api_key_uses_the_token_scheme(server):
    assert CvatClient(server.url, f"Token {server.token}").task(7).id == 7


def test_an_unknown_task_is_not_found(client):
    with pytest.raises(CvatNotFound, match="task 99 does not exist") as caught:
        client.task(99)
    assert caught.value.status_code == 404


def test_an_unreachable_server_is_one_clear_error(tmp_path):
    with pytest.raises(CvatUnreachable, match="cannot be reached"):
        dump_task("http://127.0.0.1:9", 7, "cvat_coco", (tmp_path / "s").as_uri(), token="a-token")


def test_a_failed_export_reports_cvat_s_message(client, server, tmp_path):
    server.fail_exports = "Not enough disk space"
    with pytest.raises(CvatError, match="Not enough disk space"):
        client.export(7, "COCO 1.0", tmp_path / "e.zip")


def test_a_format_cvat_does_not_know_is_a_clear_error(client, tmp_path):
    with pytest.raises(CvatError, match="Unknown format"):
        client.export(7, "Nope 1.0", tmp_path / "e.zip")


def test_upload_annotations_replaces_the_task_s_shapes(client, server, tmp_path):
    predictions = {
        "images": [{"id": 1, "file_name": "img_0002.jpg", "width": 64, "height": 64}],
        "categories": [{"id": 1, "name": "triangle"}, {"id": 2, "name": "square"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 2, "bbox": [2, 3, 10, 12], "segmentation": [], "score": 0.9},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10],
             "segmentation": [[20, 20, 30, 20, 25, 30]], "score": 0.8}]}
    (tmp_path / "predictions.json").write_text(json.dumps(predictions))
    client.upload_annotations(7, tmp_path / "predictions.json")
    shapes = server.shapes(7)
    assert [(s["type"], s["frame"]) for s in shapes] == [("rectangle", 2), ("polygon", 2)]
    assert shapes[0]["points"] == [2, 3, 12, 15]
    assert client.annotation_counts(7) == 2


def test_an_upload_cvat_cannot_import_reports_why(client, tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "unknown.jpg"}],
                                                 "categories": [], "annotations": [{"id": 1, "image_id": 1}]}))
    with pytest.raises(CvatError, match="Could not import annotations"):
        client.upload_annotations(7, tmp_path / "p.json")
    with pytest.raises(CvatError, match="no such annotation file"):
        client.upload_annotations(7, tmp_path / "missing.json")


def test_cli_dump_prints_the_annotation_path(cli, server, tmp_path, monkeypatch):
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", server.token)
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    result = cli("dataset", "dump", "--cvat-url", server.url, "--cvat-task", 8, "--format", "cvat_coco",
                 "--to", (tmp_path / "store").as_uri())
    assert result.code == 0, result.err
    prefix = result.out.strip().splitlines()[-1]
    assert prefix.startswith("annotations/8/") and (tmp_path / "store" / prefix / "images").is_dir()


def test_cli_dump_with_a_bad_token_is_one_line(cli, server, tmp_path, monkeypatch):
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "wrong-token-value")
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    result = cli("dataset", "dump", "--cvat-url", server.url, "--cvat-task", 7, "--to", (tmp_path / "s").as_uri())
    assert result.code == 1 and "Traceback" not in result.err and "wrong-token-value" not in result.out + result.err
    assert result.err.strip().startswith("error:") and "refused the access token" in result.err


# -- the fake itself --------------------------------------------------------------------------------------

def test_the_schema_check_catches_a_drifted_answer():
    task = {"id": 1, "name": "x", "jobs": {"completed": 0, "validation": 0}, "labels": {"url": "http://x/y"}}
    assert schema_problems("/api/tasks/{id}", "GET", 200, task) == []
    assert schema_problems("/api/tasks/{id}", "GET", 200, {"id": 1})  # jobs and labels are required
    assert schema_problems("/api/tasks/{id}", "GET", 200, {**task, "size": "four"})
    assert schema_problems("/api/requests/{id}", "GET", 200, {"status": "done"})
    assert schema_problems("/api/tasks/{id}/frobnicate", "GET", 200, {})  # no such operation
    assert schema_problems("/api/tasks/{id}", "GET", 404, {"detail": "Not found."}) == []


def test_the_fake_fails_its_test_when_it_drifts():
    with pytest.raises(AssertionError, match="outside CVAT's OpenAPI schema"):
        with FakeCvat(tasks=[FakeTask(id=1, images=1)]) as fake:
            fake.tasks[1].status = "finished-ish"  # not a CVAT job status
            with pytest.raises(CvatflowError):
                CvatClient(fake.url, fake.token).task(1)
