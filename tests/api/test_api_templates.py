"""Templates over HTTP: the list CVAT offers, and a template's parameter form; plus who may ask."""
from __future__ import annotations

import pytest

from api_fixtures import client, served, settings_for
from cvatflow.api import create_app
from cvatflow.config import NodePool, NodePools


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    settings = settings_for(tmp_path_factory.mktemp("home"))
    settings.node_pools = NodePools(pools=[NodePool("GPU: 1x T4", "g4dn.xlarge", {"limits": {"nvidia.com/gpu": 1}}),
                                           NodePool("CPU: 4", "m5.xlarge")])
    with served(create_app(settings)) as url:
        yield url


def test_templates_used_by_cvat_are_listed(base_url):
    with client(base_url) as http:
        answer = http.get("/api/v1/templates", params={"label": "used-by=cvat"})
    assert answer.status_code == 200
    names = [t["name"] for t in answer.json()["items"]]
    assert {"maskrcnn-training", "detr-training"} <= set(names)
    assert all(t["usedByCvat"] for t in answer.json()["items"])
    assert answer.json()["count"] == len(names)


def test_a_label_no_template_has_lists_nothing(base_url):
    with client(base_url) as http:
        answer = http.get("/api/v1/templates", params={"label": "used-by=nobody"})
    assert answer.json() == {"count": 0, "items": []}


def test_a_malformed_label_selector_is_a_422_naming_it(base_url):
    with client(base_url) as http:
        answer = http.get("/api/v1/templates", params={"label": "used-by"})
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["path"] == "label"


def test_the_form_has_public_parameters_in_order_with_types_options_and_safe_hints(base_url):
    with client(base_url) as http:
        answer = http.get("/api/v1/templates/maskrcnn-training")
    assert answer.status_code == 200
    fields = answer.json()["parameters"]
    by_name = {f["name"]: f for f in fields}
    assert by_name["cvat-model"]["type"] == "select.select" and by_name["cvat-model"]["options"]
    pool = by_name["sys-node-pool"]
    assert pool["type"] == "select.nodepool"
    assert [o["value"] for o in pool["options"]] == ["g4dn.xlarge", "m5.xlarge"]  # from the node-pool config
    assert (by_name["epochs"]["min"], by_name["val-split"]["max"]) == ("1", "99")  # the bounds auto-fill applies
    for f in fields:
        assert set(f) == {"name", "displayName", "type", "value", "required", "options", "hint", "hintHtml",
                          "min", "max"}
        assert "<" not in f["hint"]  # plain text
        assert "<script" not in f["hintHtml"] and "onclick" not in f["hintHtml"]


def test_the_form_matches_the_template_s_public_parameters(base_url):
    from cvatflow.templates import get_template

    template = get_template("detr-training")
    with client(base_url) as http:
        fields = http.get("/api/v1/templates/detr-training").json()["parameters"]
    assert [f["name"] for f in fields] == [p.name for p in template.public_parameters()]


def test_an_unknown_template_is_a_404_with_a_message(base_url):
    with client(base_url) as http:
        answer = http.get("/api/v1/templates/no-such-template")
    assert answer.status_code == 404
    assert "no-such-template" in answer.json()["message"]


def test_a_template_name_is_never_a_path_on_the_server(base_url):
    with client(base_url) as http:
        answer = http.get("/api/v1/templates/..%2F..%2Fetc%2Fpasswd")
    assert answer.status_code in (404, 422)
    assert "root:" not in answer.text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dTpw"}])
def test_every_api_endpoint_needs_a_valid_bearer_token(base_url, headers):
    import httpx

    for method, path in [("GET", "/api/v1/templates"), ("GET", "/api/v1/templates/maskrcnn-training"),
                         ("GET", "/api/v1/executions"), ("POST", "/api/v1/executions"),
                         ("GET", "/api/v1/jobs"), ("GET", "/onepanelio/workflow_templates"),
                         ("POST", "/onepanelio/get_node_pool")]:
        answer = httpx.request(method, base_url + path, headers=headers, json={}, timeout=10)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["message"]


def test_health_and_the_openapi_document_need_no_token(base_url):
    import httpx

    assert httpx.get(base_url + "/healthz").json()["status"] == "ok"
    document = httpx.get(base_url + "/openapi.json").json()
    assert "/api/v1/executions/{id}/events" in document["paths"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_the_onepanel_fork_may_authenticate_with_its_auth_token_cookie(base_url):
    import httpx

    from api_fixtures import TOKEN

    answer = httpx.get(base_url + "/onepanelio/workflow_templates", cookies={"auth-token": TOKEN})
    assert answer.status_code == 200


def test_no_configured_token_means_no_access_rather_than_open_access(tmp_path):
    settings = settings_for(tmp_path / "home", api_tokens=[])
    with served(create_app(settings)) as url, client(url, token="anything") as http:
        answer = http.get("/api/v1/templates")
    assert answer.status_code == 401
    assert "CVATFLOW_API_TOKENS" in answer.json()["message"]


def test_serve_without_tokens_makes_one_in_a_private_file_and_never_prints_it(tmp_path):
    from cvatflow.api.cli import ensure_token

    settings = settings_for(tmp_path / "home", api_tokens=[])
    said = []
    ensure_token(settings, echo=said.append)
    token_file = tmp_path / "home" / "api-token"
    assert settings.api_tokens == [token_file.read_text().strip()]
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert settings.api_tokens[0] not in " ".join(said) and str(token_file) in " ".join(said)
    again = settings_for(tmp_path / "home", api_tokens=[])
    ensure_token(again, echo=said.append)
    assert again.api_tokens == settings.api_tokens  # the same token across restarts
