"""The bad-input corpus (tests/bad_inputs.py): each case gets one clear error, no traceback, no 5xx, nothing written."""
from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import httpx
import pytest

from api_fixtures import SECRET, TOKEN, install_tiny_template, served, settings_for
from bad_inputs import Case, all_cases, base_coco, export_files, write_zip

TASK = 42  # fake_cvat_extra's task
CASES = all_cases(TASK)
RESULTS: dict[str, bool] = {}
TEMPORARY = (".prepare-", ".ingest-", ".extract-", "cvatflow-upload-", "cvatflow-dump-")
RULES = [{"event": "update:task", "when": {"status": "completed"}, "template": "tiny-training"}]


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    """Print `bad-input corpus: N tried, M clean` after the module (the number the issue asks for)."""
    yield
    tried, clean = len(RESULTS), sum(RESULTS.values())
    by_family = {}
    for case in CASES:
        if case.id in RESULTS:
            done = by_family.setdefault(case.family, [0, 0])
            done[0] += 1
            done[1] += RESULTS[case.id]
    detail = ", ".join(f"{family} {ok}/{n}" for family, (n, ok) in by_family.items())
    line = f"bad-input corpus: {tried} tried, {clean} clean ({detail})"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown on the terminal, not captured with the teardown
            reporter.write_line("\n" + line)
    else:
        print(line)


def test_the_corpus_is_large_and_covers_every_family():
    families = {case.family for case in CASES}
    assert families == {"archive", "template", "parameter", "http"}
    assert len(CASES) >= 150
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    install_tiny_template(home)
    monkeypatch.setenv("CVATFLOW_HOME", str(home))
    for name in ("CVATFLOW_STORE", "CVATFLOW_CONFIG", "CVATFLOW_BACKEND", "CVAT_URL"):
        monkeypatch.delenv(name, raising=False)
    from cvatflow.runs.local import LocalBackend

    def never(*args, **kwargs):  # a bad input must never get this far
        raise AssertionError("a bad input was submitted")
    monkeypatch.setattr(LocalBackend, "submit", never)
    return home


def snapshot(*roots: Path) -> dict[str, int]:
    found = {}
    for root in roots:
        if root.exists():
            for path in root.rglob("*"):
                found[str(path)] = path.lstat().st_size if not path.is_dir() else -1
    return found


def clean_cli(result, shown: str, names: str = "") -> None:
    """Exit 1, one or more `error:` lines (one per problem) naming the input, no traceback, no temp path."""
    text = result.err + result.out
    assert result.code == 1, f"exit {result.code}: {text[-2000:]}"
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert errors, f"no error line: {text[-2000:]}"
    assert any(shown in line for line in errors), f"no error names {shown!r}: {errors}"
    if names:
        assert any(names in line for line in errors), f"no error names {names!r}: {errors}"
    assert not any(t in text for t in TEMPORARY), f"an error names a temporary folder: {text[-2000:]}"


def record(case: Case, check) -> None:
    RESULTS[case.id] = False
    check()
    RESULTS[case.id] = True


def _ids(family: str) -> list[Case]:
    return [pytest.param(c, id=c.id) for c in CASES if c.family == family]


@pytest.mark.parametrize("case", _ids("archive"))
def test_archive(case: Case, cli, home, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    export = case.build(work)
    store = home / "store"

    def check() -> None:
        before = snapshot(store, work)
        result = cli("dataset", "prepare", export, "--out", work / "out")
        clean_cli(result, str(export), case.names)
        assert snapshot(store, work) == before, "prepare wrote something"
        result = cli("dataset", "upload", export)
        clean_cli(result, str(export))
        assert snapshot(store, work) == before, "upload wrote something"
    record(case, check)


@pytest.fixture
def good_export(tmp_path) -> Path:
    return write_zip(tmp_path / "good-export.zip", export_files(base_coco()))


@pytest.mark.parametrize("case", _ids("template"))
def test_template(case: Case, cli, home, tmp_path, good_export):
    work = tmp_path / "work"
    work.mkdir()
    path = case.build(work)

    def check() -> None:
        before = snapshot(home / "store", work)
        result = cli("run", path, "--data", good_export, "--local")
        clean_cli(result, path.name)
        assert snapshot(home / "store", work) == before
        assert cli("templates", "form", path).code == 1
    record(case, check)


@pytest.mark.parametrize("case", _ids("parameter"))
def test_parameter(case: Case, cli, home, tmp_path, good_export):
    assignments = case.build(tmp_path)
    args = [a for item in assignments for a in ("-p", item)] + case.extra.get("options", [])
    data = case.extra.get("data", good_export)

    def check() -> None:
        before = snapshot(home / "store")
        result = cli("run", "detr-training", "--data", data, "--local", *args)
        clean_cli(result, case.names)
        assert snapshot(home / "store") == before, "a refused run wrote to the store"
    record(case, check)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One API for all HTTP cases: the tiny template, a webhook rule, the fake CVAT; yields (url, home)."""
    from cvatflow.api import create_app
    from fake_cvat_extra import cvat_with_task

    home = tmp_path_factory.mktemp("api") / "home"
    install_tiny_template(home)
    (home / "datasets").mkdir(parents=True)
    with cvat_with_task(TASK) as fake:
        settings = settings_for(home, cvat_url=fake.url, webhook_rules=RULES)
        with served(create_app(settings)) as url:
            yield url, home


@pytest.mark.parametrize("case", _ids("http"))
def test_http(case: Case, api, tmp_path):
    url, home = api
    request = case.build(tmp_path)
    headers = dict(request.headers)
    if request.token:
        headers.setdefault("Authorization", f"Bearer {TOKEN}")
    content = request.content
    if content is None and request.json is not None:
        import json

        content = json.dumps(request.json).encode()
        headers.setdefault("Content-Type", "application/json")
    if request.signed:
        headers.setdefault("Content-Type", "application/json")
        headers["X-Signature-256"] = "sha256=" + hmac.new(SECRET.encode(), content or b"", hashlib.sha256).hexdigest()

    def jobs() -> int:
        return httpx.get(url + "/api/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).json()["count"]

    def check() -> None:
        before, stored = jobs(), snapshot(home / "store")
        answer = httpx.request(request.method, url + request.path, content=content, headers=headers, timeout=60)
        assert 400 <= answer.status_code < 500, f"{answer.status_code}: {answer.text[:500]}"
        body = answer.json()
        assert isinstance(body.get("message"), str) and body["message"], body
        assert "Traceback" not in answer.text
        assert jobs() == before and snapshot(home / "store") == stored, "a refused request started or wrote something"
    record(case, check)
