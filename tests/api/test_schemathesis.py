"""schemathesis against the running API: whatever the OpenAPI document allows, the server never answers 5xx."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api_fixtures import TOKEN, served, settings_for
from cvatflow.api import create_app
from cvatflow.errors import RunError
from cvatflow.runs import Client


def _no_submissions(*args, **kwargs):
    # Fuzzed requests may be valid executions; they must not start real trainings on this machine.
    raise RunError("submission is disabled in this test")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    # Imported, never replaced by "no CVAT" on ImportError: that would quietly fuzz less (issue 24).
    from fake_cvat_extra import cvat_with_task

    home = tmp_path_factory.mktemp("home")
    with cvat_with_task() as cvat:
        app_settings = settings_for(home, cvat_url=cvat.url)
        client = Client(settings=app_settings)
        client.submit = _no_submissions
        with served(create_app(app_settings, client=client)) as url:
            yield url


# The document is the app's own (the same one /openapi.json serves); requests go to the running server.
schema = schemathesis.openapi.from_dict(create_app(settings_for(Path(tempfile.mkdtemp()))).openapi())


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_server_fail(case, base_url):
    case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"},
                           checks=[not_a_server_error, response_schema_conformance], timeout=20)
