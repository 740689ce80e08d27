"""The Argo Server backend against a loopback HTTP server that records requests and answers like Argo."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cvatflow.params import CvatTask, autofill
from cvatflow.runs.argo_server import ArgoServerBackend
from cvatflow.templates import get_template, render


class FakeArgoServer:
    """Enough of Argo Server's REST API for hera's WorkflowsService; every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict]] = []
        self.workflows: dict[str, dict] = {}
        self.templates = {"maskrcnn-training": render(get_template("maskrcnn-training"))}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.requests.append(("GET", self.path, {"auth": self.headers.get("Authorization")}))
                path = self.path.split("?")[0]
                parts = path.strip("/").split("/")
                if path.startswith("/api/v1/workflow-templates/ml/"):
                    name = parts[-1]
                    return self._send(200, fake.templates[name]) if name in fake.templates else \
                        self._send(404, {"code": 5, "message": "not found"})
                if path == "/api/v1/workflow-templates/ml":
                    return self._send(200, {"metadata": {}, "items": list(fake.templates.values())})
                if path.endswith("/log"):
                    lines = [{"result": {"content": '{"message":"metrics","event_type":"EventType.METRICS",'
                                                    '"type":"val","epoch":1,"metrics":{"mAP":0.5}}',
                                         "podName": "run-1-train-1"}}]
                    data = "\n".join(json.dumps(x) for x in lines).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    return self.wfile.write(data)
                if path == "/api/v1/workflows/ml":
                    return self._send(200, {"metadata": {}, "items": list(fake.workflows.values())})
                if path.startswith("/api/v1/workflows/ml/"):
                    name = parts[-1]
                    return self._send(200, fake.workflows[name]) if name in fake.workflows else \
                        self._send(404, {"code": 5, "message": "not found"})
                self._send(404, {"message": "no route"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(("POST", self.path, body))
                workflow = body["workflow"]
                workflow.setdefault("status", {})
                fake.workflows[workflow["metadata"]["name"]] = workflow
                self._send(200, workflow)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def argo():
    with FakeArgoServer() as server:
        yield server


def test_submit_posts_a_workflow_with_a_template_ref_and_a_bearer_token(argo):
    backend = ArgoServerBackend(argo.url, "ml", token="Bearer secret-token")
    template = backend.get_template("maskrcnn-training")
    assert template.parameter("cvat-model").options  # the form metadata came back through the Argo Server
    filled = autofill(template, {"epochs": "2"}, task=CvatTask(id=9, labels=["a"]),
                      annotation_path="annotations/9/x/")
    run = backend.submit(filled, name="run-1", output_prefix="s3://b/outputs/task-9/run-1/")
    method, path, body = argo.requests[-1]
    assert (method, path) == ("POST", "/api/v1/workflows/ml")
    spec = body["workflow"]["spec"]
    assert spec["workflowTemplateRef"] == {"name": "maskrcnn-training"}
    assert {"name": "epochs", "value": "2"} in spec["arguments"]["parameters"]
    assert body["workflow"]["metadata"]["labels"]["cvatflow.io/cvat-task-id"] == "9"
    assert all(r[2].get("auth") == "Bearer secret-token" for r in argo.requests if r[0] == "GET")

    argo.workflows["run-1"]["status"] = {"phase": "Succeeded", "progress": "2/2"}
    assert run.status().phase == "Succeeded"
    assert run.metrics().best_map == 0.5
    assert [r.name for r in backend.runs()] == ["run-1"]


def test_unknown_template_is_not_found(argo):
    from cvatflow.errors import NotFoundError

    with pytest.raises(NotFoundError):
        ArgoServerBackend(argo.url, "ml").get_template("nope")


def test_unreachable_server_is_one_clear_error():
    from cvatflow.errors import RunError

    with pytest.raises(RunError, match="cannot reach the Argo Server"):
        ArgoServerBackend("http://127.0.0.1:9", "ml").templates()
