"""Every route of the API's OpenAPI document needs a token, and every name in a path is checked before use, probed
with names that exist in the server's working folder (a run folder, a template file) but are not valid names."""
from __future__ import annotations

import shutil

import httpx
import pytest

from api_fixtures import TOKEN, served, settings_for
from cvatflow.api import create_app
from cvatflow.local import LocalExecutor
from cvatflow.templates import Template, render
from paths import ROOT

# Routes that take no bearer token, and why. Everything else in the OpenAPI document must answer 401 without one.
PUBLIC = {
    ("GET", "/healthz"): "liveness probe of the kubelet",
    ("POST", "/api/v1/webhooks/cvat"): "CVAT signs its deliveries with X-Signature-256 instead",
}
# Routes outside the OpenAPI document, and why they need no token: the web UI's shell and files (the page asks
# for the token and sends it with its API calls) and FastAPI's own documentation.
UNDOCUMENTED = ("/", "/ui", "/ui/", "/ui/runs", "/ui/runs/{run_id}", "/ui/static", "/docs", "/docs/oauth2-redirect",
                "/openapi.json")

RUN = "real-run"
BAD_RUN = "Real_Run"  # a run folder of that name exists, but it is not a Kubernetes name
BAD_TEMPLATE = "Planted_Template.yaml"  # a template file of that name sits in the server's working folder
# A value for every path parameter of the document: one that exists (auth probes) and one that exists in the
# working folder but breaks the name rules (name probes). A new path parameter must be added here.
VALUES = {
    "name": ("detr-training", BAD_TEMPLATE),
    "uid": ("detr-training", BAD_TEMPLATE),
    "version": ("0", None),
    "task": ("1", None),  # an integer: FastAPI refuses anything else
    "file": ("task_1.zip", None),  # the Onepanel fork's annotation export: a download name, not a path
    "/api/v1/cvat/tasks/{id}": ("1", None),
    "/api/v1/jobs/{id}": ("no-such-job", BAD_RUN),
    "id": (RUN, BAD_RUN),
}


def value(path: str, param: str, which: int) -> str | None:
    return VALUES[path][which] if path in VALUES else VALUES[param][which]


def ask(method: str, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    """Status, headers and the start of the body; streams (the events route) are closed after their headers."""
    with httpx.stream(method, url, headers=headers, json={}, timeout=20) as answer:
        start = b""
        if "text/event-stream" not in answer.headers.get("content-type", ""):
            start = answer.read()[:2000]
        return answer.status_code, dict(answer.headers), start.decode(errors="replace")


def routes(document) -> list[tuple[str, str, list[str]]]:
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
            found.append((method.upper(), path, params))
    return found


def fill(path: str, params: list[str], which: int) -> str | None:
    for param in params:
        given = value(path, param, which)
        if given is None:
            return None
        path = path.replace("{" + param + "}", given)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    spec = {"entrypoint": "main", "templates": [{"name": "main", "dag": {"tasks": [{"name": "a", "template": "a"}]}},
                                                {"name": "a", "container": {"image": "x", "command": ["true"]}}]}
    executor = LocalExecutor(home / "runs", (home / "store").as_uri())
    executor.create(render(Template("probe", [], spec)), {}, RUN)
    shutil.copytree(home / "runs" / RUN, home / "runs" / BAD_RUN)
    app = create_app(settings_for(home))
    with served(app) as url:
        yield url, app, app.openapi()


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """The server's working folder holds a valid WorkflowTemplate file named like a path, not like a template."""
    shutil.copy(ROOT / "workflow_templates" / "detr-training.yaml", tmp_path / BAD_TEMPLATE)
    monkeypatch.chdir(tmp_path)  # the server runs in a thread of this process, so this is its working folder


def test_the_document_lists_every_router_and_the_allow_lists_are_real(server):
    _, app, document = server
    documented = {(m, p) for m, p, _ in routes(document)}
    assert set(PUBLIC) <= documented
    assert len(documented) >= 20
    from cvatflow.api import app as app_module
    from cvatflow.api import ui

    every = [r for r in app.routes if hasattr(r, "path")]  # the app's own; routers' routes carry their prefix
    for router in (*app_module.ROUTERS, ui.router):
        every += router.routes
    for route in every:
        for method in (getattr(route, "methods", None) or {"GET"}) - {"HEAD"}:
            assert (method, route.path) in documented or route.path in UNDOCUMENTED, \
                f"{method} {route.path} is neither in the OpenAPI document nor in UNDOCUMENTED"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dTpw"},
                                     {"Authorization": f"Bearer {TOKEN}x"}, {"Cookie": "auth-token=wrong"}])
def test_every_documented_route_but_the_public_ones_needs_a_valid_token(server, headers):
    url, _, document = server
    probed = 0
    for method, path, params in routes(document):
        if (method, path) in PUBLIC:
            continue
        target = fill(path, params, 0)
        status, answer_headers, text = ask(method, url + target, headers)
        assert status == 401, (method, target, status, text[:300])
        assert answer_headers["www-authenticate"] == "Bearer" and '"message"' in text
        probed += 1
    assert probed == len(routes(document)) - len(PUBLIC)


def test_the_same_probes_with_the_token_get_past_the_check(server):
    """So the 401s above came from the token check, not from a path that matched no route."""
    url, _, document = server
    for method, path, params in routes(document):
        if (method, path) in PUBLIC or method != "GET":
            continue  # GETs change nothing; the POSTs' bodies are another test's business
        target = fill(path, params, 0)
        status, _, text = ask(method, url + target, {"Authorization": f"Bearer {TOKEN}"})
        assert status != 401, (method, target, text[:300])


def test_the_public_routes_are_public_and_the_webhook_still_wants_its_signature(server):
    url, _, _ = server
    assert httpx.get(url + "/healthz", timeout=10).status_code == 200
    answer = httpx.post(url + "/api/v1/webhooks/cvat", json={"event": "update:task"}, timeout=10)
    assert answer.status_code in (401, 403), answer.text


def test_every_name_in_a_path_refuses_an_existing_file_or_folder_that_is_not_a_valid_name(server, planted):
    url, _, document = server
    headers = {"Authorization": f"Bearer {TOKEN}"}
    probed = set()
    for method, path, params in routes(document):
        target = fill(path, params, 1)
        if not params or target is None:
            continue
        status, _, text = ask(method, url + target, headers)
        assert status in (404, 422), (method, target, status, text[:300])
        assert '"parameters"' not in text and '"phase"' not in text  # no template form, no run status
        probed.add(path)
    assert {"/api/v1/templates/{name}", "/api/v1/executions/{id}", "/api/v1/executions/{id}/logs",
            "/api/v1/executions/{id}/events", "/onepanelio/workflow_templates/{uid}/versions"} <= probed


def test_the_probes_exist_so_a_missing_check_would_serve_them(server, planted, tmp_path):
    """Without the name checks these lookups find something: the probes are not empty threats."""
    from cvatflow.runs.local import LocalRun
    from cvatflow.templates import get_template

    assert get_template(BAD_TEMPLATE).parameters  # what the lookup makes of a path
    home = server[1].state.services.settings.home
    assert LocalRun(home / "runs" / BAD_RUN).status().phase == "Pending"
