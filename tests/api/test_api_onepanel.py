"""/onepanelio/: what the Onepanel CVAT fork's dialog calls, answered in the shapes its UI reads."""
from __future__ import annotations

import pytest

from api_fixtures import TINY, TOKEN, client, tiny_api, wait_for
from cvatflow.config import NodePool, NodePools
from cvatflow.params import CHECKPOINT_MISSING

TAGS = {"cvat_coco", "cvat_voc", "cvat_yolo", "cvat_tfrecord", "cvat_mot", "cvat_label_me", "cvat", "datumaro_project",
        # CVAT 2.x formats (issue 11)
        "cvat_video", "cvat_coco_keypoints", "cvat_ultralytics_detection", "cvat_ultralytics_segmentation",
        "cvat_ultralytics_obb", "cvat_segmentation_mask"}



@pytest.fixture
def fork(tmp_path, fake_cvat):
    pools = NodePools(label="node.kubernetes.io/instance-type",
                      pools=[NodePool("GPU: 1x T4", "g4dn.xlarge"), NodePool("CPU: 4", "m5.xlarge")])
    with tiny_api(tmp_path / "home", fake_cvat.url, node_pools=pools,
                  extra={"workspaceUid": "cvat-workspace-1", "eventsInterval": 0.1}) as (url, _):
        yield url


def test_the_template_list_has_uid_name_and_version_of_templates_used_by_cvat(fork):
    with client(fork) as http:
        body = http.get("/onepanelio/workflow_templates").json()
    assert body["count"] == len(body["workflow_templates"])
    by_uid = {t["uid"]: t for t in body["workflow_templates"]}
    assert {"maskrcnn-training", "detr-training", TINY} <= set(by_uid)
    tiny = by_uid[TINY]
    assert tiny["name"] == "Tiny training" and tiny["version"] == "1" and tiny["is_latest"] is True
    assert {"key": "used-by", "value": "cvat"} in tiny["labels"]


def test_version_0_is_the_latest_with_every_parameter_as_the_fork_renders_them(fork):
    with client(fork) as http:
        template = http.get("/onepanelio/workflow_templates/maskrcnn-training/versions/0").json()
        versions = http.get("/onepanelio/workflow_templates/maskrcnn-training/versions").json()
        missing = http.get("/onepanelio/workflow_templates/maskrcnn-training/versions/7")
    assert versions["count"] == 1 and versions["workflow_templates"][0]["version"] == template["version"]
    assert missing.status_code == 404 and "version 0" in missing.json()["message"]
    assert "templates:" in template["manifest"]
    params = {p["name"]: p for p in template["parameters"]}
    for p in template["parameters"]:  # the fields the fork's WorkflowParameter interface reads
        assert {"name", "value", "type", "display_name", "hint", "options", "required", "visibility"} <= set(p)
    pool = params["sys-node-pool"]
    assert pool["value"] == "g4dn.xlarge"  # `default` is the first pool, as Onepanel answered
    assert [o["value"] for o in pool["options"]] == ["g4dn.xlarge", "m5.xlarge"]
    assert params["cvat-annotation-path"]["visibility"] != "public"  # hidden parameters are sent, not shown
    assert all("<script" not in (p["hint"] or "") for p in template["parameters"])


def test_node_pools_and_dump_formats(fork):
    with client(fork) as http:
        pools = http.post("/onepanelio/get_node_pool").json()
        formats = http.post("/onepanelio/get_available_dump_formats").json()
    assert pools == {"node_pool": {"label": "node.kubernetes.io/instance-type", "options": [
        {"name": "GPU: 1x T4", "value": "g4dn.xlarge"}, {"name": "CPU: 4", "value": "m5.xlarge"}]}}
    assert {f["tag"] for f in formats["dump_formats"]} == TAGS
    assert {"name": "COCO 1.0", "tag": "cvat_coco"} in formats["dump_formats"]


def test_object_counts_are_lists_the_fork_takes_the_length_of(fork, fake_cvat):
    with client(fork) as http:
        counts = http.post(f"/onepanelio/get_object_counts/{fake_cvat.task_id}").json()
    assert set(counts) == {"shapes", "tracks"}
    assert len(counts["shapes"]) == len(fake_cvat.shapes(fake_cvat.task_id))
    assert counts["tracks"] == []


def test_the_annotation_path_preview_has_onepanel_s_layout(fork):
    with client(fork) as http:
        name = http.post("/onepanelio/get_annotation_path/42").json()["name"]
    prefix, task, stamp, end = name.split("/")
    assert (prefix, task, end) == ("annotations", "42", "") and len(stamp) == 14 and stamp.isdigit()


def test_execute_workflow_answers_a_url_and_labels_the_run_as_onepanel_did(fork, fake_cvat):
    # The fork posts every parameter at its value (hidden ones too) plus the annotation path it was shown.
    with client(fork) as http:
        template = http.get(f"/onepanelio/workflow_templates/{TINY}/versions/0").json()
        parameters = {p["name"]: p["value"] for p in template["parameters"]}
        parameters.update({"epochs": "2", "cvat-annotation-path": "annotations/5/11222026000000/"})
        answer = http.post(f"/onepanelio/execute_workflow/{fake_cvat.task_id}",
                           json={"workflow_template": TINY, "parameters": parameters})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["url"] == f"{fork}/ui/runs/{body['uid']}"  # the web UI's run page, not JSON
        execution = wait_for(lambda: (e := http.get(f"/api/v1/executions/{body['uid']}").json())["phase"]
                             in ("Succeeded", "Failed", "Error") and e, timeout=120)
    assert execution["phase"] == "Succeeded", execution
    assert execution["labels"]["cvat-job-id"] == str(fake_cvat.task_id)  # Onepanel's name for the task id
    assert execution["labels"]["workspace-uid"] == "cvat-workspace-1"
    assert execution["parameters"]["epochs"] == "2"
    # The path the fork suggested is replaced by where the dump really went.
    assert execution["parameters"]["cvat-annotation-path"] != "annotations/5/11222026000000/"


def test_a_missing_checkpoint_is_404_with_onepanel_s_message(fork, fake_cvat):
    with client(fork) as http:
        answer = http.post(f"/onepanelio/execute_workflow/{fake_cvat.task_id}", json={
            "workflow_template": TINY, "parameters": {"cvat-finetune-checkpoint": "artifacts/ns/none/"}})
    assert answer.status_code == 404
    assert answer.json()["message"] == CHECKPOINT_MISSING


def test_bad_parameters_are_one_422_with_a_message_the_fork_can_show(fork, fake_cvat):
    with client(fork) as http:
        answer = http.post(f"/onepanelio/execute_workflow/{fake_cvat.task_id}", json={
            "workflow_template": TINY, "parameters": {"epochs": "lots", "dump-format": "cvat_png"}})
    assert answer.status_code == 422
    assert answer.json()["message"]
    assert {p["path"] for p in answer.json()["problems"]} == {"epochs", "dump-format"}


def test_base_models_are_the_outputs_of_earlier_successful_runs(fork, tmp_path):
    from cvatflow.local.executor import LocalExecutor, write_json
    from cvatflow.templates import get_template, render

    home = tmp_path / "home"
    with client(fork) as http:
        assert http.post("/onepanelio/get_base_model", json={"uid": "maskrcnn-training"}).json() == {"keys": []}
        executor = LocalExecutor(home / "runs", (home / "store").as_uri())
        run_dir = executor.create(render(get_template("maskrcnn-training")), {}, "maskrcnn-training-abcde",
                                  {"app.kubernetes.io/managed-by": "cvatflow"},
                                  (home / "store").as_uri() + "/outputs/task-5/maskrcnn-training-abcde/")
        write_json(run_dir / "status.json", {"phase": "Succeeded", "nodes": {}})
        keys = http.post("/onepanelio/get_base_model", json={"uid": "maskrcnn-training"}).json()["keys"]
    assert keys == ["outputs/task-5/maskrcnn-training-abcde/"]


def test_the_fork_s_cookie_is_enough(fork):
    import httpx

    assert httpx.post(fork + "/onepanelio/get_node_pool", cookies={"auth-token": TOKEN}).status_code == 200
    assert httpx.post(fork + "/onepanelio/get_node_pool").status_code == 401


def test_the_output_path_is_the_task_s_folder_under_the_template_s_prefix(fork):
    with client(fork) as http:
        named = http.post("/onepanelio/get_output_path/42", json={"uid": "maskrcnn-training"})
        bare = http.post("/onepanelio/get_output_path/42")
        unknown = http.post("/onepanelio/get_output_path/42", json={"uid": "no-such-template"})
    assert named.status_code == 200 and named.json() == {"name": "outputs/task-42/"}
    assert bare.json() == {"name": "outputs/task-42/"}
    assert unknown.status_code == 404


def test_the_run_page_link_opens_with_only_the_fork_s_cookie(fork):
    import httpx

    with client(fork) as http:
        run = http.get("/api/v1/executions").json()
    cookies = {"auth-token": TOKEN, "auth-username": "admin"}
    page = httpx.get(fork + "/ui/runs/some-run", cookies=cookies)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # What the page's script then asks for: the cookie alone is the sign-in, checked like the bearer token.
    assert httpx.get(fork + "/api/v1/executions", cookies=cookies).json() == run
    assert httpx.get(fork + "/api/v1/executions", cookies={"auth-token": "wrong"}).status_code == 401
    assert httpx.get(fork + "/api/v1/executions").status_code == 401


def test_a_cookie_changes_nothing_without_a_header_a_cross_site_page_cannot_send(fork, fake_cvat):
    import httpx

    body = {"template": TINY, "cvatTask": fake_cvat.task_id, "parameters": {"epochs": "lots"}}
    cookies = {"auth-token": TOKEN}
    assert httpx.post(fork + "/api/v1/executions", json=body, cookies=cookies).status_code == 401
    # With the UI's header it goes through the token check (and then fails on the bad value, not on auth).
    answer = httpx.post(fork + "/api/v1/executions", json=body, cookies=cookies,
                        headers={"X-Requested-With": "cvatflow-ui"})
    assert answer.status_code == 422


def poll_export(http, path: str, params: dict[str, str]) -> list[int]:
    """What the fork's exportDataset/dumpAnnotations do: GET until not 202, recording each status."""
    statuses = []
    for _ in range(50):
        answer = http.get(path, params=params)
        statuses.append(answer.status_code)
        if answer.status_code != 202:
            return statuses
    raise AssertionError(f"still 202 after 50 polls: {statuses}")


@pytest.mark.parametrize(("kind", "with_images"), [("dataset", True), ("annotations/task_42.zip", False)])
def test_the_fork_s_exports_poll_then_download_cvat_s_file_with_its_headers(fork, fake_cvat, kind, with_images):
    import io
    import json
    import zipfile

    path = f"/onepanelio/api/v1/tasks/{fake_cvat.task_id}/{kind}"
    with client(fork, token=None) as http:
        http.cookies.update({"auth-token": TOKEN, "auth-username": "admin", "csrftoken": "x"})
        statuses = poll_export(http, path, {"format": "COCO 1.0"})
        assert statuses[0] == 202 and statuses[-1] == 201, statuses
        answer = http.get(path, params={"format": "COCO 1.0", "action": "download"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["content-disposition"] == f'attachment; filename="task_{fake_cvat.task_id}_dataset.zip"'
    names = zipfile.ZipFile(io.BytesIO(answer.content)).namelist()
    coco = json.loads(zipfile.ZipFile(io.BytesIO(answer.content)).read("annotations/instances_default.json"))
    assert len(coco["annotations"]) == len(fake_cvat.shapes(fake_cvat.task_id))
    assert any(n.startswith("images/") for n in names) == with_images


def test_an_export_cvat_refuses_is_one_error_and_the_next_poll_starts_over(fork, fake_cvat):
    path = f"/onepanelio/api/v1/tasks/{fake_cvat.task_id}/dataset"
    with client(fork) as http:
        unknown = http.get(path, params={"format": "No such format 9.9"})
        missing = http.get("/onepanelio/api/v1/tasks/999/dataset", params={"format": "COCO 1.0"})
        fake_cvat.fail_exports = "disk full"
        failed = poll_export(http, path, {"format": "COCO 1.0"})
        fake_cvat.fail_exports = None
        again = poll_export(http, path, {"format": "COCO 1.0"})
    assert unknown.status_code == 400 and "No such format" in unknown.json()["message"]
    assert missing.status_code == 404
    assert failed[-1] >= 400 and again[0] == 202 and again[-1] == 201
    assert httpx_status(fork + path) == 401


def httpx_status(url: str) -> int:
    import httpx

    return httpx.get(url, params={"format": "COCO 1.0"}).status_code
