"""Stop, terminate, retry, resubmit and delete through the Argo Server's workflow service endpoints."""
from __future__ import annotations

import json

import pytest

from cvatflow.errors import ConflictError
from cvatflow.runs.argo_server import ArgoServerBackend
from test_runs_argo_server import FakeArgoServer


class LifecycleArgoServer(FakeArgoServer):
    """The recording server, with the lifecycle verbs: PUT .../{stop,terminate,retry,resubmit} and DELETE."""

    def __init__(self) -> None:
        super().__init__()
        fake = self
        handler = self.server.RequestHandlerClass

        def do_PUT(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            fake.requests.append(("PUT", self.path, body))
            name, verb = self.path.strip("/").split("/")[-2:]
            workflow = fake.workflows[name]
            if verb == "resubmit":
                new = json.loads(json.dumps(workflow))
                new["metadata"]["name"] = f"{name}-resub"
                new["status"] = {}
                fake.workflows[new["metadata"]["name"]] = new
                return self._send(200, new)
            return self._send(200, workflow)

        def do_DELETE(self):
            fake.requests.append(("DELETE", self.path, {}))
            fake.workflows.pop(self.path.split("?")[0].strip("/").split("/")[-1], None)
            self._send(200, {})

        handler.do_PUT = do_PUT
        handler.do_DELETE = do_DELETE


@pytest.fixture
def argo():
    with LifecycleArgoServer() as server:
        server.workflows["run-1"] = {"metadata": {"name": "run-1", "labels": {
            "workflows.argoproj.io/workflow-template": "maskrcnn-training"}}, "spec": {}, "status": {
            "phase": "Running"}}
        yield server


@pytest.mark.parametrize("verb", ["stop", "terminate", "retry"])
def test_each_verb_is_a_put_to_its_endpoint(argo, verb):
    backend = ArgoServerBackend(argo.url, "ml", token="Bearer t")
    run = backend.run("run-1")
    if verb == "retry":
        argo.workflows["run-1"]["status"]["phase"] = "Failed"
    getattr(run, verb)()
    method, path, body = argo.requests[-1]
    assert (method, path) == ("PUT", f"/api/v1/workflows/ml/run-1/{verb}")
    assert body["name"] == "run-1" and body["namespace"] == "ml"


def test_stop_of_a_finished_run_sends_nothing(argo):
    argo.workflows["run-1"]["status"]["phase"] = "Succeeded"
    run = ArgoServerBackend(argo.url, "ml").run("run-1")
    with pytest.raises(ConflictError, match="already ended"):
        run.stop()
    assert all(r[0] != "PUT" for r in argo.requests)


def test_resubmit_and_delete(argo):
    backend = ArgoServerBackend(argo.url, "ml")
    new = backend.resubmit(backend.run("run-1"))
    assert new.name == "run-1-resub"
    assert argo.requests[-1][:2] == ("PUT", "/api/v1/workflows/ml/run-1/resubmit")
    backend.run("run-1").delete()
    assert argo.requests[-1][:2] == ("DELETE", "/api/v1/workflows/ml/run-1")
    assert "run-1" not in argo.workflows
