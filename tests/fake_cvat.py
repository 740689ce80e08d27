"""A fake CVAT server on loopback whose every JSON answer is checked against CVAT's OpenAPI schema.

Usage::

    from fake_cvat import FakeCvat, FakeTask

    with FakeCvat(tasks=[FakeTask(id=7, name="shapes", labels=["circle", "square"], images=4)]) as cvat:
        client = CvatClient(cvat.url, cvat.token)          # cvat-sdk talks to it over real HTTP
        ...
        cvat.tasks[7].annotations                           # CVAT's LabeledData JSON: {"shapes": [...], ...}
        cvat.calls                                          # [("GET", "/api/tasks/7"), ...]

What it serves (what cvat-sdk 2.80 calls for cvatflow.cvat):
  GET  /api/server/about                      the version check the SDK makes on connect (no auth needed)
  GET  /api/users/self                        the token's user
  GET  /api/tasks, /api/tasks/{id}            paginated list, one task
  GET  /api/labels?task_id=                   a task's labels (paginated)
  GET  /api/tasks/{id}/annotations/           shapes/tags/tracks
  POST /api/tasks/{id}/dataset/export         starts an export (202 + rq_id); then
  GET  /api/requests/{rq_id}                  "started" once, then "finished" with result_url
  GET  /api/tasks/{id}/dataset?action=download&rq_id=   the zip: CVAT's COCO 1.0 layout
       (annotations/instances_default.json + images/default/<file>); other formats converted with datumaro
  POST /api/tasks/{id}/annotations/ + TUS     annotation import (COCO 1.0 JSON), replacing the task's shapes
And what cvat_sdk.auto_annotation.annotate_task calls (through cvat_sdk.datasets.TaskDataset):
  GET  /api/tasks/{id}/data/meta              frame names and sizes
  GET  /api/tasks/{id}/data/?type=chunk       an "imageset" chunk: a zip of the original frames in order
  PUT  /api/tasks/{id}/annotations/           replace the annotations (LabeledData JSON; clear_existing)
  PATCH /api/tasks/{id}/annotations/?action=create   add shapes and tags
Request bodies of PUT and PATCH are checked against the schema's request body too (`.schema_errors`).

Auth is `Authorization: Bearer <token>` (personal access token) or `Token <token>` (legacy key); anything
else is 401. A JSON answer that does not match the schema's response for its operation (or an
undocumented status whose body is not DRF's `{"detail": ...}`) is recorded in `.schema_errors`, answered
as 500, and raised as an AssertionError when the `with` block ends, so the fake cannot drift from CVAT.
Set `.fail_exports = "message"` to make exports fail in the background as CVAT reports it.
"""
from __future__ import annotations

import base64
import functools
import io
import itertools
import json
import re
import secrets
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import yaml

SCHEMA = Path(__file__).resolve().parent / "data" / "cvat-openapi.yml"
JSON_TYPE = "application/vnd.cvat+json"
VERSION = "2.80.0"  # what the SDK expects, so it does not warn
DATUMARO_EXPORTERS = {
    "CVAT for images 1.1": "cvat", "Datumaro 1.0": "datumaro", "YOLO 1.1": "yolo", "PASCAL VOC 1.1": "voc",
    "LabelMe 3.0": "label_me", "MOT 1.1": "mot_seq_gt",
}
EXPORT_FORMATS = ("COCO 1.0", *DATUMARO_EXPORTERS)
CHUNK_SIZE = 2  # frames per data chunk: small, so a test of a few frames crosses chunks


# -- the schema check ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    return _null_composites(yaml.load(SCHEMA.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def _null_composites(node: Any) -> Any:
    """drf-spectacular writes a nullable reference as `{allOf: [$ref], nullable: true}`, meaning "the referenced
    object or null" (CVAT answers null there). OpenAPI 3.0 validators apply `nullable` only beside `type`, so
    spell it out as anyOf(object, null); nothing else in the schema changes."""
    if isinstance(node, list):
        return [_null_composites(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _null_composites(value) for key, value in node.items()}
    if node.get("nullable") and any(key in node for key in ("allOf", "oneOf", "anyOf")):
        rest = {key: value for key, value in node.items() if key != "nullable"}
        return {"anyOf": [rest, {"enum": [None]}]}
    return node


@functools.cache
def _validator(template: str, method: str, status: int):
    """The response validator of an operation and status, or None where the schema documents no JSON body."""
    from openapi_schema_validator import OAS30ReadValidator

    operation = _spec()["paths"][template][method.lower()]
    answer = operation["responses"].get(str(status)) or {}
    schema = ((answer.get("content") or {}).get(JSON_TYPE) or {}).get("schema")
    if schema is None:
        return None
    # Refs are "#/components/...": resolve them against a document that carries the components.
    return OAS30ReadValidator({**schema, "components": _spec()["components"]})


def request_problems(template: str, method: str, body: Any) -> list[str]:
    """Why `body` is not what CVAT's schema says `method template` accepts as its JSON request body."""
    from openapi_schema_validator import OAS30WriteValidator

    operation = _spec()["paths"][template][method.lower()]
    content = (operation.get("requestBody") or {}).get("content") or {}
    schema = (content.get("application/json") or content.get(JSON_TYPE) or {}).get("schema")
    if schema is None:
        return [f"{method} {template}: the schema documents no JSON request body"]
    validator = OAS30WriteValidator({**schema, "components": _spec()["components"]})
    return [f"{method} {template} request: {error.message} at /{'/'.join(map(str, error.absolute_path))}"
            for error in validator.iter_errors(body)]


def schema_problems(template: str, method: str, status: int, body: Any) -> list[str]:
    """Why `body` is not what CVAT's schema says `method template` answers with `status` (empty if it is)."""
    paths = _spec()["paths"]
    if template not in paths or method.lower() not in paths[template]:
        return [f"{method} {template} is not an operation of CVAT's API"]
    validator = _validator(template, method, status)
    if validator is None:
        if status >= 400 and (isinstance(body, dict) and isinstance(body.get("detail"), str)
                              or isinstance(body, list) and all(isinstance(i, str) for i in body)):
            return []  # DRF's error bodies, which CVAT's schema leaves out
        return [f"{method} {template}: the schema documents no JSON body for status {status}"]
    return [f"{method} {template} {status}: {error.message} at /{'/'.join(map(str, error.absolute_path))}"
            for error in validator.iter_errors(body)]


# -- tasks -----------------------------------------------------------------------------------------------

@dataclass
class FakeTask:
    """A task: `images` synthetic frames of `size` pixels with shapes of `labels` (seeded), unless
    `annotations` (CVAT's LabeledData JSON) is given."""

    id: int
    name: str = ""
    labels: list[str] = field(default_factory=lambda: ["circle", "square", "triangle"])
    images: int = 3
    size: int = 64
    annotations: dict[str, Any] | None = None
    project_id: int | None = None
    status: str = "annotation"
    seed: int = 0
    frames: list[tuple[str, bytes]] = field(default_factory=list, repr=False)
    label_types: dict[str, str] = field(default_factory=dict)  # CVAT's label type by name; "any" unless given

    def __post_init__(self) -> None:
        self.name = self.name or f"task {self.id}"
        self.label_ids = {name: self.id * 100 + i + 1 for i, name in enumerate(self.labels)}
        shapes = self._render()
        if self.annotations is None:
            self.annotations = {"version": 0, "tags": [], "shapes": shapes, "tracks": []}

    def _render(self) -> list[dict[str, Any]]:
        """Synthetic frames (cvatflow.datasets.synth) and their objects as CVAT shapes."""
        from cvatflow.datasets.synth import CATEGORIES, render_image

        rng = np.random.default_rng(self.seed + self.id)
        shapes = []
        for frame in range(self.images):
            image, objects = render_image(rng, self.size)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            self.frames.append((f"img_{frame:04d}.jpg", buffer.getvalue()))
            for obj in objects:
                label = self.labels[CATEGORIES.index(obj["category"]) % len(self.labels)]
                if obj["category"] == "square":  # rectangles and polygons, as annotators draw them
                    x, y, w, h = obj["bbox"]
                    kind, points = "rectangle", [x, y, x + w, y + h]
                else:
                    kind, points = "polygon", [v for point in obj["polygon"] for v in point]
                shapes.append(_shape(len(shapes) + 1, frame, self.label_ids[label], kind, points))
        return shapes

    def frame_of(self, file_name: str) -> int | None:
        name = Path(file_name).name
        return next((i for i, (n, _) in enumerate(self.frames) if n == name), None)


def _shape(shape_id: int, frame: int, label_id: int, kind: str, points: list[float]) -> dict[str, Any]:
    return {"id": shape_id, "type": kind, "frame": frame, "label_id": label_id, "group": 0, "source": "manual",
            "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0,
            "points": [round(float(v), 2) for v in points], "attributes": [], "elements": []}


def coco_of(task: FakeTask) -> dict[str, Any]:
    """The task's annotations as CVAT writes COCO 1.0 (categories in label order, ids from 1)."""
    names = {label_id: name for name, label_id in task.label_ids.items()}
    category = {name: i + 1 for i, name in enumerate(task.labels)}
    coco = {"licenses": [{"name": "", "id": 0, "url": ""}],
            "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""},
            "categories": [{"id": i, "name": n, "supercategory": ""} for n, i in category.items()],
            "images": [{"id": i + 1, "width": task.size, "height": task.size, "file_name": name, "license": 0,
                        "flickr_url": "", "coco_url": "", "date_captured": 0} for i, (name, _) in enumerate(task.frames)],
            "annotations": []}
    for shape in task.annotations.get("shapes") or []:
        points = shape["points"]
        xs, ys = points[0::2], points[1::2]
        box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        polygon = shape["type"] == "polygon"
        area = abs(sum(x1 * y2 - x2 * y1 for x1, y1, x2, y2 in zip(xs, ys, xs[1:] + xs[:1], ys[1:] + ys[:1]))) / 2 \
            if polygon else box[2] * box[3]
        coco["annotations"].append({
            "id": len(coco["annotations"]) + 1, "image_id": shape["frame"] + 1,
            "category_id": category[names[shape["label_id"]]], "segmentation": [points] if polygon else [],
            "area": round(area, 2), "bbox": [round(v, 2) for v in box], "iscrowd": 0,
            "attributes": {"occluded": shape["occluded"], "rotation": 0.0}})
    return coco


def export_zip(task: FakeTask, format_name: str, include_images: bool) -> bytes:
    """The export archive CVAT would send: COCO 1.0 natively, other formats through datumaro (as CVAT does)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("annotations/instances_default.json", json.dumps(coco_of(task)))
        if include_images:
            for name, data in task.frames:
                archive.writestr(f"images/default/{name}", data, compress_type=zipfile.ZIP_STORED)
    if format_name == "COCO 1.0":
        return buffer.getvalue()
    import datumaro as dm

    with tempfile.TemporaryDirectory() as tmp:
        zipfile.ZipFile(buffer).extractall(Path(tmp) / "coco")
        dataset = dm.Dataset.import_from(str(Path(tmp) / "coco"), "coco_instances")
        dataset.export(str(Path(tmp) / "out"), DATUMARO_EXPORTERS[format_name], save_media=include_images)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted((Path(tmp) / "out").rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(Path(tmp) / "out").as_posix())
        return out.getvalue()


def import_coco(task: FakeTask, data: dict[str, Any]) -> None:
    """Replace the task's shapes with a COCO document's annotations, matched by file name and label name."""
    categories = {c["id"]: c["name"] for c in data.get("categories") or []}
    frames = {image["id"]: task.frame_of(image["file_name"]) for image in data.get("images") or []}
    shapes = []
    for ann in data.get("annotations") or []:
        frame, label = frames.get(ann.get("image_id")), categories.get(ann.get("category_id"))
        if frame is None or label not in task.label_ids:
            raise ValueError(f"annotation {ann.get('id')}: unknown image or label {label!r}")
        segmentation = ann.get("segmentation")
        if isinstance(segmentation, list) and segmentation and len(segmentation[0]) >= 6:
            kind, points = "polygon", segmentation[0]
        else:
            x, y, w, h = ann["bbox"]
            kind, points = "rectangle", [x, y, x + w, y + h]
        shapes.append(_shape(len(shapes) + 1, frame, task.label_ids[label], kind, points))
    task.annotations = {"version": task.annotations.get("version", 0) + 1, "tags": [], "shapes": shapes,
                        "tracks": []}


# -- the server --------------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Request:
    """A background request (export or import) as /api/requests/{id} reports it."""

    id: str
    kind: str
    task_id: int
    format: str
    result: bytes | None = None
    error: str | None = None
    polls: int = 0
    created: str = field(default_factory=_now)


class FakeCvat:
    """The fake server; a context manager. `url`, `token`, `tasks` (by id), `calls`, `schema_errors`."""

    def __init__(self, tasks: list[FakeTask] | None = None, token: str | None = None) -> None:
        self.tasks = {t.id: t for t in (tasks if tasks is not None else [FakeTask(id=1)])}
        self.token = token or f"pat-{secrets.token_hex(8)}"
        self.calls: list[tuple[str, str]] = []
        self.schema_errors: list[str] = []
        self.fail_exports: str | None = None
        self.requests: dict[str, _Request] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # conveniences for tests of other parts
    @property
    def task_id(self) -> int:
        """The first task's id."""
        return next(iter(self.tasks))

    def shapes(self, task_id: int) -> list[dict[str, Any]]:
        return list(self.tasks[task_id].annotations.get("shapes") or [])

    def __enter__(self) -> FakeCvat:
        _spec()  # parse the schema before the first request, not inside it
        handler = type("Handler", (_Handler,), {"cvat": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="fake-cvat", daemon=True).start()
        return self

    def __exit__(self, exc_type, *rest) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self.schema_errors and exc_type is None:
            raise AssertionError("the fake CVAT answered outside CVAT's OpenAPI schema:\n  "
                                 + "\n  ".join(self.schema_errors))

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)


ROUTES: list[tuple[str, re.Pattern, str | None, str]] = []


def route(method: str, pattern: str, template: str | None):
    """Register a handler; `template` is the schema path whose responses check it (None: not JSON, not in
    the schema, as CVAT's TUS chunk endpoint)."""
    def register(fn):
        ROUTES.append((method, re.compile(pattern + r"$"), template, fn.__name__))
        return fn
    return register


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as urllib3 expects
    cvat: FakeCvat

    def log_message(self, *args) -> None:  # quiet: pytest shows failures, not every request
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_PUT(self):
        self._dispatch("PUT")

    # -- plumbing -------------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.cvat.calls.append((method, parts.path))
        for verb, pattern, template, name in ROUTES:
            match = pattern.match(parts.path)
            if verb == method and match:
                self.template = template
                if name != "about" and not self._authorised():
                    return
                try:
                    getattr(self, name)(*match.groups())
                except Exception as exc:  # a bug in the fake: show it as CVAT would, a 500
                    self._send(500, b"fake CVAT failed: " + repr(exc).encode(), "text/plain")
                return
        self.template = None
        self._send(404, b"not found", "text/plain")

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization") or ""
        scheme, _, key = header.partition(" ")
        if not header:
            self._json(401, {"detail": "Authentication credentials were not provided."})
        elif scheme not in ("Bearer", "Token") or key != self.cvat.token:
            self._json(401, {"detail": "Invalid token."})
        else:
            return True
        return False

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        problems = schema_problems(self.template, self.command, status, body) if self.template else \
            [f"{self.command} {self.path}: JSON answered by a route that is not in CVAT's schema"]
        if problems:
            self.cvat.schema_errors.extend(problems)
            self._send(500, json.dumps({"detail": "; ".join(problems)}).encode(), JSON_TYPE)
            return
        self._send(status, json.dumps(body).encode(), JSON_TYPE, headers)

    def _send(self, status: int, data: bytes, content_type: str | None = None,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _task(self, task_id: str) -> FakeTask | None:
        task = self.cvat.tasks.get(int(task_id))
        if task is None:
            self._json(404, {"detail": "No Task matches the given query."})
        return task

    def _page(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        page, size = int(self.query.get("page", 1)), int(self.query.get("page_size", 10))
        chunk = items[(page - 1) * size: page * size]
        more = page * size < len(items)
        base = f"{self.cvat.url}{urlsplit(self.path).path}"
        return {"count": len(items), "next": f"{base}?page={page + 1}&page_size={size}" if more else None,
                "previous": f"{base}?page={page - 1}&page_size={size}" if page > 1 else None, "results": chunk}

    # -- the API --------------------------------------------------------------------------------------

    @route("GET", r"/api/server/about", "/api/server/about")
    def about(self):
        self._json(200, {"name": "Computer Vision Annotation Tool", "description": "fake CVAT for cvatflow's tests",
                         "version": VERSION, "logo_url": "", "subtitle": ""})

    @route("GET", r"/api/users/self", "/api/users/self")
    def user_self(self):
        self._json(200, {"url": f"{self.cvat.url}/api/users/1", "id": 1, "username": "admin", "first_name": "",
                         "last_name": "", "email": "admin@example.org", "groups": ["admin"], "is_staff": True,
                         "is_superuser": True, "is_active": True, "last_login": _now(), "date_joined": _now(),
                         "has_analytics_access": False})

    @route("GET", r"/api/tasks", "/api/tasks")
    def list_tasks(self):
        self._json(200, self._page([self._task_json(t) for t in self.cvat.tasks.values()]))

    @route("GET", r"/api/tasks/(\d+)", "/api/tasks/{id}")
    def retrieve_task(self, task_id):
        if task := self._task(task_id):
            self._json(200, self._task_json(task))

    @route("GET", r"/api/labels", "/api/labels")
    def labels(self):
        tasks = [self.cvat.tasks[int(self.query["task_id"])]] if "task_id" in self.query and \
            int(self.query["task_id"]) in self.cvat.tasks else ([] if "task_id" in self.query else
                                                                list(self.cvat.tasks.values()))
        items = [{"id": t.label_ids[name], "name": name, "color": "#33ddff", "attributes": [],
                  "type": t.label_types.get(name, "any"),
                  "sublabels": [], "project_id": t.project_id, "task_id": t.id, "parent_id": None,
                  "has_parent": False} for t in tasks for name in t.labels]
        self._json(200, self._page(items))

    @route("GET", r"/api/tasks/(\d+)/annotations/?", "/api/tasks/{id}/annotations/")
    def get_annotations(self, task_id):
        if task := self._task(task_id):
            self._json(200, task.annotations)

    @route("POST", r"/api/tasks/(\d+)/dataset/export", "/api/tasks/{id}/dataset/export")
    def start_export(self, task_id):
        task = self._task(task_id)
        if task is None:
            return
        format_name = self.query.get("format", "")
        if format_name not in EXPORT_FORMATS:
            self._json(400, ["Unknown format specified for the request"])
            return
        request = _Request(f"export-{self.cvat.next_id()}", "export:dataset", task.id, format_name)
        if self.cvat.fail_exports:
            request.error = self.cvat.fail_exports
        else:
            request.result = export_zip(task, format_name, self.query.get("save_images", "false").lower() == "true")
        self.cvat.requests[request.id] = request
        self._json(202, {"rq_id": request.id})

    @route("GET", r"/api/requests/([\w:.-]+)", "/api/requests/{id}")
    def request_status(self, rq_id):
        request = self.cvat.requests.get(rq_id)
        if request is None:
            self._json(404, {"detail": "Not found."})
            return
        request.polls += 1
        done = request.polls > 1  # "started" once, so clients really poll
        status = "started" if not done else ("failed" if request.error else "finished")
        result_url = (f"{self.cvat.url}/api/tasks/{request.task_id}/dataset?action=download&rq_id={request.id}"
                      if status == "finished" and request.result is not None else None)
        self._json(200, {
            "status": status, "message": (request.error or "") if done else "", "id": request.id,
            "operation": {"type": request.kind, "target": "task", "project_id": None, "task_id": request.task_id,
                          "job_id": None, "format": request.format, "function_id": None},
            "progress": 1.0 if done else 0.5, "created_date": request.created, "started_date": request.created,
            "finished_date": _now() if done else None, "expiry_date": None,
            "owner": {"id": 1, "username": "admin"}, "result_url": result_url, "result_id": None})

    @route("GET", r"/api/tasks/(\d+)/dataset", "/api/tasks/{id}/dataset")
    def download(self, task_id):
        request = self.cvat.requests.get(self.query.get("rq_id", ""))
        if request is None or request.result is None or request.task_id != int(task_id):
            self._json(404, {"detail": "Not found."})
            return
        self._send(200, request.result, "application/zip",
                   {"Content-Disposition": f'attachment; filename="task_{task_id}_dataset.zip"'})

    # CVAT's upload protocol: POST Upload-Start, TUS create (POST) + PATCH chunks, POST Upload-Finish.
    @route("POST", r"/api/tasks/(\d+)/annotations/?", "/api/tasks/{id}/annotations/")
    def upload(self, task_id):
        task = self._task(task_id)
        if task is None:
            return
        if "Upload-Start" in self.headers:
            self._send(202, b"")
        elif "Upload-Finish" in self.headers:
            self._finish_upload(task)
        elif "Upload-Length" in self.headers:
            file_id = f"{self.cvat.next_id():08x}"
            meta = dict(item.split(" ", 1) for item in self.headers.get("Upload-Metadata", "").split(",") if item)
            name = base64.b64decode(meta.get("filename", "")).decode() or "annotations.json"
            self.cvat.uploads[file_id] = {"name": name, "length": int(self.headers["Upload-Length"]),
                                          "data": bytearray()}
            self._send(201, b"", headers={"Location": f"{self.cvat.url}/api/tasks/{task.id}/annotations/{file_id}",
                                          "Upload-Filename": name, "Tus-Resumable": "1.0.0"})
        else:
            self._json(400, {"detail": "Expected a CVAT upload: Upload-Start, TUS, Upload-Finish."})

    @route("PATCH", r"/api/tasks/(\d+)/annotations/([0-9a-f]+)", None)
    @route("HEAD", r"/api/tasks/(\d+)/annotations/([0-9a-f]+)", None)
    def upload_chunk(self, task_id, file_id):
        upload = self.cvat.uploads.get(file_id)
        if upload is None:
            self._send(404, b"")
            return
        if self.command == "PATCH":
            if int(self.headers.get("Upload-Offset", -1)) != len(upload["data"]):
                self._send(409, b"", headers={"Upload-Offset": str(len(upload["data"]))})
                return
            upload["data"] += self.body
        self._send(204 if self.command == "PATCH" else 200, b"",
                   headers={"Upload-Offset": str(len(upload["data"])), "Tus-Resumable": "1.0.0"})

    def _finish_upload(self, task: FakeTask) -> None:
        format_name = self.query.get("format", "")
        upload = next((u for u in self.cvat.uploads.values() if u["name"] == self.query.get("filename")), None)
        request = _Request(f"import-{self.cvat.next_id()}", "import:annotations", task.id, format_name)
        if upload is None or len(upload["data"]) != upload["length"]:
            request.error = "the uploaded file is missing or incomplete"
        elif format_name != "COCO 1.0":
            request.error = f"the fake CVAT imports COCO 1.0 only, not {format_name}"
        else:
            try:
                import_coco(task, json.loads(bytes(upload["data"])))
            except (ValueError, KeyError, TypeError) as exc:
                request.error = f"Could not import annotations: {exc}"
        self.cvat.requests[request.id] = request
        self._json(202, {"rq_id": request.id})

    # -- what annotate_task (cvat_sdk.auto_annotation) calls -----------------------------------------------

    @route("GET", r"/api/tasks/(\d+)/data/meta", "/api/tasks/{id}/data/meta")
    def data_meta(self, task_id):
        if task := self._task(task_id):
            frames = [{"width": task.size, "height": task.size, "name": name, "related_files": 0,
                       "has_related_context": False} for name, _ in task.frames]
            self._json(200, {"chunks_updated_date": "2026-01-02T00:00:00Z", "chunk_size": CHUNK_SIZE,
                             "size": len(frames), "image_quality": 70, "start_frame": 0,
                             "stop_frame": max(0, len(frames) - 1), "frame_filter": "", "frames": frames,
                             "deleted_frames": [], "included_frames": None})

    @route("GET", r"/api/tasks/(\d+)/data/?", None)
    def data(self, task_id):
        task = self._task(task_id)
        if task is None:
            return
        kind, number = self.query.get("type"), int(self.query.get("number", -1))
        first = number * CHUNK_SIZE
        if kind != "chunk" or self.query.get("quality") != "original" or not 0 <= first < len(task.frames):
            self._json(400, {"detail": "the fake CVAT serves original chunks of existing frames only"})
            return
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for name, data in task.frames[first:first + CHUNK_SIZE]:
                archive.writestr(name, data)
        self._send(200, buffer.getvalue(), "application/zip")

    @route("PUT", r"/api/tasks/(\d+)/annotations/?", "/api/tasks/{id}/annotations/")
    @route("PATCH", r"/api/tasks/(\d+)/annotations/?", "/api/tasks/{id}/annotations/")
    def write_annotations(self, task_id):
        task = self._task(task_id)
        if task is None:
            return
        body = json.loads(self.body or b"{}")
        problems = request_problems(self.template, self.command, body)
        if self.command == "PATCH" and self.query.get("action") not in ("create", "update", "delete"):
            problems.append("PATCH /api/tasks/{id}/annotations/: action must be create, update or delete")
        if problems:
            self.cvat.schema_errors.extend(problems)
            self._json(400, {"detail": "; ".join(problems)})
            return
        known = set(task.label_ids.values())
        if any(item.get("label_id") not in known for key in ("shapes", "tags") for item in body.get(key) or []):
            self._json(400, {"detail": "a label_id is not a label of this task"})
            return
        current = task.annotations if self.command == "PATCH" else {"shapes": [], "tags": [], "tracks": []}
        if self.command == "PATCH" and self.query["action"] != "create":
            self._json(400, {"detail": "the fake CVAT implements action=create only"})
            return
        next_id = max([s["id"] for s in current.get("shapes") or []], default=0) + 1
        shapes = list(current.get("shapes") or [])
        for i, shape in enumerate(body.get("shapes") or []):
            shapes.append({"id": next_id + i, "group": 0, "occluded": False, "outside": False, "z_order": 0,
                           "rotation": 0.0, "attributes": [], "elements": [], "source": "manual", **shape})
        task.annotations = {"version": task.annotations.get("version", 0) + 1,
                            "tags": list(current.get("tags") or []) + list(body.get("tags") or []),
                            "shapes": shapes, "tracks": list(current.get("tracks") or [])}
        # CVAT answers both with the task's annotations; the schema documents that body for PATCH only.
        problems = schema_problems(self.template, "PATCH", 200, task.annotations)
        if problems:
            self.cvat.schema_errors.extend(problems)
        self._send(200, json.dumps(task.annotations).encode(), JSON_TYPE)

    def _task_json(self, task: FakeTask) -> dict[str, Any]:
        url = f"{self.cvat.url}/api/tasks/{task.id}"
        return {
            "url": url, "id": task.id, "name": task.name, "project_id": task.project_id, "mode": "annotation",
            "owner": {"url": f"{self.cvat.url}/api/users/1", "id": 1, "username": "admin", "first_name": "",
                      "last_name": ""},
            "assignee": None, "bug_tracker": "", "created_date": "2026-01-01T00:00:00Z",
            "updated_date": "2026-01-02T00:00:00Z", "overlap": 0, "segment_size": max(1, len(task.frames)),
            "status": task.status, "data_chunk_size": CHUNK_SIZE, "data_compressed_chunk_type": "imageset",
            "guide_id": None, "data_original_chunk_type": "imageset", "size": len(task.frames),
            "image_quality": 70, "data": task.id, "dimension": "2d", "subset": "", "organization": None,
            "target_storage": None, "source_storage": None,
            "jobs": {"count": 1, "completed": 0, "validation": 0, "url": f"{self.cvat.url}/api/jobs?task_id={task.id}"},
            "labels": {"url": f"{self.cvat.url}/api/labels?task_id={task.id}"},
            "assignee_updated_date": None, "validation_mode": None, "consensus_enabled": False,
        }


__all__ = ["FakeCvat", "FakeTask", "coco_of", "export_zip", "request_problems", "schema_problems"]
