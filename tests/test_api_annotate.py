"""The annotate round trip: a finished run's model predicts a CVAT task's images, and the task gets the boxes."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest

import api_fixtures
from api_fixtures import client, served, settings_for, wait_for
from cvatflow.api import create_app
from cvatflow.local.executor import LocalExecutor, write_json
from cvatflow.templates import get_template, render

# Stands in for `cvatflow-train <model> predict` (the real one needs torch and a trained model, minutes on a
# CPU): same arguments, same outputs (a COCO 1.0 file CVAT imports), same progress events.
PREDICT = textwrap.dedent('''
    import argparse, json, pathlib
    p = argparse.ArgumentParser()
    p.add_argument("adapter"); p.add_argument("command")
    for o in ("--model", "--data", "--output", "--threshold"):
        p.add_argument(o)
    a = p.parse_args()
    assert a.adapter == "maskrcnn" and a.command == "predict", (a.adapter, a.command)
    config = json.loads((pathlib.Path(a.model) / "config.json").read_text())
    titles = [c["title"] for c in config["out_classes"]]
    images = sorted(pathlib.Path(a.data, "images").rglob("*.*"))
    coco = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": t} for i, t in enumerate(titles)]}
    for n, path in enumerate(images, 1):
        coco["images"].append({"id": n, "file_name": str(path.relative_to(pathlib.Path(a.data, "images"))),
                               "width": 8, "height": 8})
        coco["annotations"].append({"id": n, "image_id": n, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16,
                                    "iscrowd": 0, "segmentation": [], "score": 0.9})
        print(json.dumps({"message": "progress", "event_type": "EventType.PROGRESS", "subtask": "predict",
                          "current": n, "total": len(images), "timestamp": 0}), flush=True)
    out = pathlib.Path(a.output, "annotations"); out.mkdir(parents=True)
    (out / "instances_default.json").write_text(json.dumps(coco))
''')

fake_cvat = api_fixtures.fake_cvat  # the fixture, under its name here


@pytest.fixture
def trained(tmp_path, fake_cvat):
    """The API, and a Succeeded local run whose output (model/config.json) is in the store."""
    home = tmp_path / "home"
    settings = settings_for(home, cvat_url=fake_cvat.url)
    stub = tmp_path / "predict.py"
    stub.write_text(PREDICT)
    settings.predict_command = [sys.executable, str(stub)]
    prefix = "outputs/task-1/maskrcnn-training-done1/"
    model = home / "store" / prefix / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({
        "settings": {"model": "maskrcnn", "variant": "maskrcnn_resnet50_fpn"},
        "out_classes": [{"title": t, "shape": "bitmap", "color": "#ff0000"} for t in fake_cvat.labels],
        "class_title_to_idx": {t: i for i, t in enumerate(fake_cvat.labels)}}))
    executor = LocalExecutor(home / "runs", settings.store)
    run_dir = executor.create(render(get_template("maskrcnn-training")), {}, "maskrcnn-training-done1",
                              {"app.kubernetes.io/managed-by": "cvatflow"}, settings.store + "/" + prefix)
    write_json(run_dir / "status.json", {"phase": "Succeeded", "nodes": {}, "progress": "1/1",
                                         "startedAt": "2026-11-22T10:00:00Z", "finishedAt": "2026-11-22T11:00:00Z"})
    with served(create_app(settings)) as url:
        yield url


def test_annotating_a_task_uploads_the_run_s_predictions_into_it(trained, fake_cvat):
    with client(trained) as http:
        answer = http.post("/api/v1/executions/maskrcnn-training-done1/annotate",
                           json={"cvatTask": fake_cvat.task_id, "threshold": 0.3})
        assert answer.status_code == 202, answer.text
        job = answer.json()
        assert job["kind"] == "annotate" and job["execution"] == "maskrcnn-training-done1"
        done = wait_for(lambda: (j := http.get(f"/api/v1/jobs/{job['id']}").json())["state"]
                        in ("succeeded", "failed") and j, timeout=120)
    assert done["state"] == "succeeded", done
    assert done["result"]["annotations"] >= 1 and done["result"]["threshold"] == 0.3
    assert done["done"] == done["total"] >= 1  # progress came from the predict events
    # CVAT's annotation import replaces the task's annotations with the file's: now the predictions.
    assert len(fake_cvat.shapes(fake_cvat.task_id)) == done["result"]["annotations"]


def test_a_run_that_did_not_succeed_cannot_annotate(trained, fake_cvat, tmp_path):
    from cvatflow.local.executor import read_json

    status_file = next((tmp_path / "home" / "runs").glob("*/status.json"))
    status = read_json(status_file)
    write_json(status_file, {**status, "phase": "Failed"})
    with client(trained) as http:
        answer = http.post("/api/v1/executions/maskrcnn-training-done1/annotate",
                           json={"cvatTask": fake_cvat.task_id})
    assert answer.status_code == 409
    assert "Failed" in answer.json()["message"]


def test_annotating_an_unknown_task_is_404_and_starts_nothing(trained):
    with client(trained) as http:
        answer = http.post("/api/v1/executions/maskrcnn-training-done1/annotate", json={"cvatTask": 999999})
        assert answer.status_code == 404
        assert http.get("/api/v1/jobs", params={"kind": "annotate"}).json()["count"] == 0
