"""Hostile input, one test per kind: links in folders, template paths, replayed webhooks, half-done work."""
from __future__ import annotations

import json
import os
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from api_fixtures import TINY, client, install_tiny_template, signed, tiny_api
from cvatflow.datasets.synth import make_export
from cvatflow.errors import CvatflowError, DatasetError


def files_under(root: Path) -> dict[str, int]:
    """Every file under `root` with its size: what "the store is unchanged" compares."""
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.exists() else {}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A CVATFLOW_HOME of the test's own with the tiny template, and a store under it."""
    home = tmp_path / "home"
    install_tiny_template(home)
    monkeypatch.setenv("CVATFLOW_HOME", str(home))
    for name in ("CVATFLOW_STORE", "CVATFLOW_CONFIG", "CVATFLOW_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="module")
def export_zip(tmp_path_factory) -> Path:
    return make_export(tmp_path_factory.mktemp("export") / "export.zip", images=4, size=64)


def folder_of(export_zip: Path, target: Path) -> Path:
    with zipfile.ZipFile(export_zip) as zf:
        zf.extractall(target)
    return target


SECRET_FILE_TEXT = "secret-outside-the-export"


def hostile_folders(export_zip: Path, root: Path) -> dict[str, Path]:
    """Folder exports, each holding one thing that reaches outside it."""
    outside = root / "outside.txt"
    outside.write_text(SECRET_FILE_TEXT)
    made = {}
    link = folder_of(export_zip, root / "symlink")
    os.symlink(outside, link / "images" / "evil.jpg")
    made["symlink"] = link
    link_dir = folder_of(export_zip, root / "symlinked-folder")
    os.symlink(root, link_dir / "images" / "up")
    made["symlinked folder"] = link_dir
    hard = folder_of(export_zip, root / "hardlink")
    os.link(outside, hard / "images" / "evil.jpg")
    made["hard link"] = hard
    pipe = folder_of(export_zip, root / "fifo")
    os.mkfifo(pipe / "images" / "pipe.jpg")
    made["named pipe"] = pipe
    return made


def test_the_tree_check_refuses_each_kind_and_names_the_folder_and_entry(export_zip, tmp_path):
    from cvatflow.datasets.safety import check_tree

    for kind, folder in hostile_folders(export_zip, tmp_path).items():
        with pytest.raises(DatasetError) as caught:
            check_tree(folder)
        message = str(caught.value)
        assert str(folder) in message and "images/" in message, (kind, message)
    check_tree(folder_of(export_zip, tmp_path / "clean"))  # a clean export passes


@pytest.mark.parametrize("command", ["prepare", "upload", "run"])
def test_a_symlink_in_a_folder_export_is_refused_by_the_cli(command, cli, home, export_zip, tmp_path):
    folder = hostile_folders(export_zip, tmp_path)["symlink"]
    store = home / "store"
    before = files_under(store)
    args = {"prepare": ["dataset", "prepare", folder, "--out", tmp_path / "out"],
            "upload": ["dataset", "upload", folder],
            "run": ["run", TINY, "--data", folder, "--local"]}[command]
    result = cli(*args)
    assert result.code == 1, result
    assert "Traceback" not in result.err + result.out
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "symbolic link" in errors[0] and str(folder) in errors[0], result.err
    assert files_under(store) == before
    assert not (tmp_path / "out").exists()


def test_a_symlink_in_a_folder_export_is_refused_by_the_python_api(home, export_zip, tmp_path):
    from cvatflow import Client

    folder = hostile_folders(export_zip, tmp_path)["symlink"]
    client_ = Client("local")
    with pytest.raises(DatasetError, match="symbolic link"):
        client_.execute(TINY, dataset=folder)
    assert files_under(home / "store") == {}


def test_a_symlink_in_a_folder_export_is_refused_over_http(tmp_path, fake_cvat, export_zip):
    datasets = tmp_path / "home" / "datasets"
    datasets.mkdir(parents=True)
    folder = hostile_folders(export_zip, datasets)["symlink"]
    with tiny_api(tmp_path / "home", fake_cvat.url) as (url, _), client(url) as http:
        answer = http.post("/api/v1/executions", json={"template": TINY, "dataset": str(folder)})
        assert answer.status_code == 422, answer.text
        assert "symbolic link" in answer.json()["message"] and str(folder) in answer.json()["message"]
        assert http.get("/api/v1/jobs").json()["count"] == 0
    assert files_under(tmp_path / "home" / "store") == {}


def test_tar_exports_are_read_and_their_links_refused(export_zip, tmp_path):
    from cvatflow.datasets import ingest

    folder = folder_of(export_zip, tmp_path / "plain")
    good = tmp_path / "export.tar.gz"
    with tarfile.open(good, "w:gz") as tf:
        tf.add(folder, arcname=".")
    assert ingest(good, tmp_path / "good").report.images == 4
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        tf.add(folder, arcname=".")
        info = tarfile.TarInfo("images/evil.jpg")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DatasetError, match=r"evil.tar: entry 'images/evil.jpg' is a symbolic link"):
        ingest(evil, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_an_encrypted_zip_is_one_clear_error_naming_the_file_and_entry(tmp_path):
    from cvatflow.datasets import ingest

    archive = tmp_path / "locked.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("annotations/instances_default.json", "{}")
    raw = bytearray(archive.read_bytes())
    # Set the "encrypted" flag in the local and central headers, as a password-protected zip has it.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature)
        raw[at + offset] |= 1
    archive.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"locked.zip: entry 'annotations/instances_default.json' is encrypted"):
        ingest(archive, tmp_path / "out")


def test_errors_name_the_users_file_never_a_temporary_folder(export_zip, tmp_path):
    from cvatflow.datasets import prepare

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(export_zip) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith(".json"):
                doc = json.loads(data)
                doc["images"][0]["width"] = "640"
                data = json.dumps(doc).encode()
            target.writestr(item, data)
    with pytest.raises(CvatflowError) as caught:
        prepare(broken, tmp_path / "out")
    message = str(caught.value)
    assert ".prepare-" not in message and ".ingest-" not in message and "cvatflow-upload" not in message
    assert str(broken) in message and "images[0].width" in message and "got str '640'" in message


# -- the API reads templates by name only -------------------------------------------------------------

def test_the_api_never_reads_a_template_from_a_path(tmp_path, fake_cvat, monkeypatch):
    from cvatflow.templates import to_yaml
    from cvatflow.templates.catalog import get_template
    from cvatflow.templates.render import render

    # A valid template file in the server's working folder, under names the API could take for paths.
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    text = to_yaml(render(get_template("detr-training")))
    for name in ("evil.yaml", "evil.yml", "evil.json", "evil"):
        (workdir / name).write_text(text)
    monkeypatch.chdir(workdir)
    with tiny_api(tmp_path / "home", fake_cvat.url) as (url, _), client(url) as http:
        for name in ("evil.yaml", "evil.yml", "evil.json", "evil"):
            answer = http.get(f"/api/v1/templates/{name}")
            assert answer.status_code == 404, (name, answer.text)
            answer = http.post("/api/v1/executions", json={"template": name, "cvatTask": fake_cvat.task_id})
            assert answer.status_code in (404, 422), (name, answer.text)
        assert http.get("/api/v1/jobs").json()["count"] == 0
        assert http.get(f"/api/v1/templates/{TINY}").status_code == 200  # the template folder, by name


# -- request bodies ---------------------------------------------------------------------------------------

def test_json_endpoints_refuse_wrong_content_types_big_and_deep_bodies(tmp_path, fake_cvat):
    with tiny_api(tmp_path / "home", fake_cvat.url) as (url, _), client(url) as http:
        body = json.dumps({"template": TINY, "cvatTask": fake_cvat.task_id})
        plain = http.post("/api/v1/executions", content=body, headers={"Content-Type": "text/plain"})
        assert plain.status_code == 415 and "Content-Type" in plain.json()["message"], plain.text
        deep = "[" * 100_000 + "]" * 100_000
        nested = http.post("/api/v1/executions", content=deep, headers={"Content-Type": "application/json"})
        assert nested.status_code == 400 and "nested" in nested.json()["message"], nested.text
        big = http.post("/api/v1/executions", content=b" " * (2 * 1024 * 1024),
                        headers={"Content-Type": "application/json"})
        assert big.status_code == 413 and "limit" in big.json()["message"]
        assert http.get("/api/v1/jobs").json()["count"] == 0


def test_the_request_limits_come_from_the_config(tmp_path, fake_cvat):
    extra = {"maxRequestBytes": 200, "maxJsonDepth": 3, "eventsInterval": 0.1}
    with tiny_api(tmp_path / "home", fake_cvat.url, extra=extra) as (url, _), client(url) as http:
        big = http.post("/api/v1/executions", json={"template": TINY, "name": "a" * 300})
        assert big.status_code == 413 and "200 bytes" in big.json()["message"]
        deep = http.post("/api/v1/executions", json={"template": TINY, "parameters": {"a": [[1]]}})
        assert deep.status_code == 400 and "3 levels" in deep.json()["message"]


# -- webhooks ---------------------------------------------------------------------------------------------

RULES = [{"event": "update:task", "when": {"status": "completed"}, "template": TINY}]


def delivery(task_id: int, stamp: str | None = None) -> dict:
    from datetime import UTC, datetime

    stamp = stamp or datetime.now(UTC).isoformat()
    return {"event": "update:task", "webhook_id": 3, "sender": {"id": 1},
            "task": {"id": task_id, "status": "completed", "updated_date": stamp},
            "before_update": {"status": "annotation"}}


def test_a_resigned_redelivery_with_a_new_request_id_starts_nothing(tmp_path, fake_cvat):
    with tiny_api(tmp_path / "home", fake_cvat.url, webhook_rules=RULES) as (url, _):
        body, headers = signed(delivery(fake_cvat.task_id))
        first = httpx.post(url + "/api/v1/webhooks/cvat", content=body, headers={**headers, "X-Request-Id": "a"})
        again = httpx.post(url + "/api/v1/webhooks/cvat", content=body, headers={**headers, "X-Request-Id": "b"})
        assert first.status_code == 202 and again.status_code == 200, again.text
        assert again.json()["duplicate"] is True and again.json()["executions"] == first.json()["executions"]
        with client(url) as http:
            assert http.get("/api/v1/jobs", params={"kind": "execution"}).json()["count"] == 1


def test_a_delivery_outside_the_replay_window_or_nested_too_deep_starts_nothing(tmp_path, fake_cvat):
    with tiny_api(tmp_path / "home", fake_cvat.url, webhook_rules=RULES) as (url, _):
        body, headers = signed(delivery(fake_cvat.task_id, stamp="2020-01-01T00:00:00Z"))
        old = httpx.post(url + "/api/v1/webhooks/cvat", content=body, headers=headers)
        assert old.status_code == 400 and "replay window" in old.json()["message"], old.text
        deep = ('{"event": "update:task", "x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
        _, headers = signed({})
        from api_fixtures import SECRET
        from cvatflow.api.webhooks import signature

        headers["X-Signature-256"] = signature(deep, SECRET)
        nested = httpx.post(url + "/api/v1/webhooks/cvat", content=deep, headers=headers)
        assert nested.status_code == 400 and "nested" in nested.json()["message"], nested.text
        with client(url) as http:
            assert http.get("/api/v1/jobs").json()["count"] == 0


# -- transactions: validate, then write, then submit; a failure at any stage leaves the store as it was ---

def test_a_bad_parameter_with_data_leaves_the_store_unchanged(cli, home, export_zip, monkeypatch):
    from cvatflow.storage.base import Store

    uploads = []
    real = Store.upload_dir
    monkeypatch.setattr(Store, "upload_dir", lambda self, *a, **k: uploads.append(a) or real(self, *a, **k))
    result = cli("run", TINY, "--data", export_zip, "-p", "epochs=ten", "--local")
    assert result.code == 1 and "Traceback" not in result.err
    assert "epochs" in result.err and "ten" in result.err
    assert uploads == []  # refused before the upload, not written and removed again
    assert files_under(home / "store") == {}


@pytest.mark.parametrize("stage", ["dataset", "upload", "fill", "submit"])
def test_a_failure_at_each_stage_leaves_the_store_as_it_was(stage, home, export_zip, tmp_path, monkeypatch):
    from cvatflow import Client
    from cvatflow import submission as submission_module
    from cvatflow.storage.base import Store

    data: Path = export_zip
    if stage == "dataset":  # the export itself is refused before anything is written
        data = tmp_path / "broken.zip"
        data.write_bytes(b"PK\x03\x04 not really a zip")
    if stage == "upload":  # the store fails halfway through the upload
        real = Store.upload_dir

        def failing(self, local_dir, prefix, progress=None):
            real(self, Path(local_dir) / "images", prefix + "images/")  # some objects land, then it breaks
            raise OSError("disk full")
        monkeypatch.setattr(Store, "upload_dir", failing)
    if stage == "fill":  # the last fill, with the real annotation path, fails after the upload
        real_fill = submission_module.autofill

        def fussy(template, values=None, **kwargs):
            if kwargs.get("annotation_path") not in (None, "annotations/pending/"):
                raise CvatflowError("refused after the upload")
            return real_fill(template, values, **kwargs)
        monkeypatch.setattr(submission_module, "autofill", fussy)
    runner = Client("local")
    if stage == "submit":  # the cluster (here: the local executor) refuses the run
        def refuse(*args, **kwargs):
            raise CvatflowError("the cluster said no")
        monkeypatch.setattr(runner.backend, "submit", refuse)
    with pytest.raises((CvatflowError, OSError)):
        runner.execute(TINY, dataset=data)
    assert files_under(home / "store") == {}, stage
    assert runner.runs() == []


@pytest.mark.parametrize("spec, name", [
    ({"source": {"dataset": "../../etc/secrets/"}, "parameters": {"cvat-num-classes": "3"}}, "spec.source.dataset"),
    ({"parameters": {"cvat-output-path": "../../etc"}}, "cvat-output-path"),
    ({"parameters": {"cvat-output-path": "outputs\nx"}}, "cvat-output-path"),
])
def test_the_operator_refuses_store_keys_that_leave_the_store(spec, name):
    from controller_fixtures import call, make_deps, training_run
    from cvatflow.controller import handlers

    deps = make_deps()
    body = training_run()
    body["spec"].update(spec)
    status = call(handlers.reconcile, body, deps)
    assert status["phase"] == "Invalid", status
    assert any(name in p["path"] for p in status["problems"]), status["problems"]
    assert deps.cluster.creates == 0


def test_a_refused_submission_removes_the_cvat_dump(home, fake_cvat, monkeypatch):
    from cvatflow import Client

    monkeypatch.setenv("CVAT_URL", fake_cvat.url)
    runner = Client("local")

    def refuse(*args, **kwargs):
        raise CvatflowError("the cluster said no")
    monkeypatch.setattr(runner.backend, "submit", refuse)
    dumps = []
    real_dump = runner.pipeline.dump
    monkeypatch.setattr(runner.pipeline, "dump", lambda *a, **k: dumps.append(real_dump(*a, **k)) or dumps[-1])
    with pytest.raises(CvatflowError, match="said no"):
        runner.execute(TINY, cvat_task=fake_cvat.task_id)
    assert dumps, "the task was not dumped, so this test proves nothing"
    assert files_under(home / "store") == {}
