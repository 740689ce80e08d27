"""Hypothesis fuzzing of the COCO reader and the JSON endpoints: only our errors (4xx), never a crash or a 5xx."""
from __future__ import annotations

import copy
import hashlib
import hmac
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_fixtures import SECRET, TOKEN, install_tiny_template, served, settings_for
from bad_inputs import base_coco, png
from cvatflow.errors import CvatflowError

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)


def _paths(value, prefix=()):
    """Every place in a JSON document, as a tuple of keys and indexes."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


PLACES = [p for p in _paths(base_coco()) if p]


@st.composite
def coco_documents(draw):
    """The base COCO document with one to three places replaced by arbitrary JSON values."""
    doc = copy.deepcopy(base_coco())
    for _ in range(draw(st.integers(1, 3))):
        place = draw(st.sampled_from(PLACES))
        target = doc
        try:
            for part in place[:-1]:
                target = target[part]
            target[place[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed this place
    return doc


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(png())
    return folder


def read_and_validate(text: bytes, folder) -> None:
    from cvatflow.datasets.coco import read_json, validate

    path = folder.parent / "fuzz.json"
    path.write_bytes(text)
    try:
        data = read_json(path)
        for fix in (False, True):
            validate(copy.deepcopy(data), folder, fix=fix)
    except CvatflowError:
        pass  # a clear refusal is the right answer; any other exception fails the test


@FUZZ
@given(doc=coco_documents())
def test_the_coco_reader_refuses_or_reads_every_mutated_document(doc, images):
    read_and_validate(json.dumps(doc, allow_nan=True).encode(), images)


@FUZZ
@given(doc=json_values)
def test_the_coco_reader_refuses_or_reads_any_json(doc, images):
    read_and_validate(json.dumps(doc, allow_nan=True).encode(), images)


@FUZZ
@given(text=st.binary(max_size=200))
def test_the_coco_reader_refuses_any_bytes(text, images):
    read_and_validate(text, images)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from cvatflow.api import create_app

    home = tmp_path_factory.mktemp("fuzz-api") / "home"
    install_tiny_template(home)
    rules = [{"event": "update:task", "when": {"status": "completed"}, "template": "tiny-training"}]
    with served(create_app(settings_for(home, webhook_rules=rules))) as url, \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        yield http


request_bodies = st.dictionaries(
    st.sampled_from(["template", "cvatTask", "cvatJob", "dataset", "parameters", "labels", "name", "x"]),
    json_values | st.sampled_from(["no-such-template", "../x.yaml", "tiny-training.yaml"]), max_size=6)
content_types = st.sampled_from(["application/json", "text/plain", "", "application/json; charset=utf-8",
                                 "application/merge-patch+json", "multipart/form-data"])


@FUZZ
@given(body=request_bodies | json_values, content_type=content_types)
def test_executions_answer_every_body_without_a_5xx(api, body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    answer = api.post("/api/v1/executions", content=json.dumps(body, allow_nan=True).encode(), headers=headers)
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert isinstance(answer.json().get("message"), str)


@FUZZ
@given(body=json_values | st.fixed_dictionaries({"event": st.sampled_from(["update:task", "ping"])},
                                                optional={"task": json_values, "before_update": json_values}))
def test_signed_webhooks_answer_every_body_without_a_5xx(api, body):
    content = json.dumps(body, allow_nan=True).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), content, hashlib.sha256).hexdigest()
    answer = api.post("/api/v1/webhooks/cvat", content=content,
                      headers={"Content-Type": "application/json", "X-Signature-256": signature})
    assert answer.status_code < 500, answer.text
