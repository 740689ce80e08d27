"""The fork's `/onepanelio/api/v1/tasks/{id}/dataset` and `/annotations/{file}`: CVAT 1.0's polled export, served
from today's CVAT (start an export, poll its request, stream the file), with the dump's CVAT client and token.

CVAT 1.0's protocol, as the fork's `cvat-core` `server-proxy.js` (`exportDataset`, `dumpAnnotations`) follows it:
`GET ...?format=F` answers 202 while the file is being prepared (the fork asks again after 3 s) and 201 once it
is ready; `GET ...?format=F&action=download` then answers the file. The fork itself (axios, `Accept:
application/json`) reads `{message}` from that last answer instead (its server copied the file to the workspace's
/share and said where: `tasks-actions.tsx` shows `res.data.message`), so a request that accepts JSON gets the file
put in the store and `{message}` naming it; any other (a browser, curl) gets the file.
"""
from __future__ import annotations

import json
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from cvatflow.api.auth import require_token_or_cookie
from cvatflow.api.errors import ERROR_RESPONSES
from cvatflow.api.services import Services, get_services
from cvatflow.errors import CvatError

router = APIRouter(prefix="/onepanelio/api/v1/tasks", tags=["onepanel"],
                   dependencies=[Depends(require_token_or_cookie)], responses=ERROR_RESPONSES)
ServicesDep = Annotated[Services, Depends(get_services)]
TaskId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The CVAT task id.")]
Format = Annotated[str, Query(min_length=1, max_length=100, description="A CVAT export format, e.g. `COCO 1.0`.")]
Action = Annotated[str | None, Query(pattern="^download$", description="`download`: the prepared file.")]
EXPORT_RESPONSES = {
    200: {"description": "With `action=download`: the file, as CVAT answered it (headers included); when the "
                         "request accepts JSON (the fork), `{message}` naming where in the store the file was put.",
          "content": {"application/zip": {}, "application/json": {"schema": {
              "type": "object", "properties": {"message": {"type": "string"}}}}}},
    201: {"description": "The file is ready: ask again with `action=download`.",
          "content": {"application/json": {"schema": {"type": "object"}}}},
    202: {"description": "CVAT is preparing the file: ask again later (the fork waits 3 s).",
          "content": {"application/json": {"schema": {"type": "object"}}}},
}
CHUNK = 1 << 16  # bytes per read while streaming: the file never sits in memory whole
# Headers of CVAT's download passed on to the browser (the rest describe CVAT's connection, not the file).
PASSED_HEADERS = ("content-type", "content-length", "content-disposition", "last-modified", "etag")


@dataclass
class _Export:
    rq_id: str
    result_url: str | None = None


class Exports:
    """The export requests started for the fork, by (task, format, with images): CVAT 1.0 kept one per file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[tuple[int, str, bool], _Export] = {}

    def get(self, key: tuple[int, str, bool]) -> _Export | None:
        with self._lock:
            return self._by_key.get(key)

    def put(self, key: tuple[int, str, bool], export: _Export | None) -> None:
        with self._lock:
            if export is None:
                self._by_key.pop(key, None)
            else:
                self._by_key[key] = export


def _exports(request: Request) -> Exports:
    state = request.app.state
    if getattr(state, "onepanel_exports", None) is None:
        state.onepanel_exports = Exports()
    return state.onepanel_exports


def _start(cvat, task: int, format_name: str, images: bool) -> str:
    """POST /api/tasks/{id}/dataset/export; the request id CVAT answers with 202."""
    from cvat_sdk.core.helpers import make_request_headers

    with cvat._errors(f"export task {task} as {format_name!r}", task):
        sdk = cvat._sdk()
        url = f"{cvat.url}/api/tasks/{task}/dataset/export?" + urlencode(
            {"format": format_name, "save_images": str(images).lower()})
        response = sdk.api_client.rest_client.request(method="POST", url=url,
                                                      headers=make_request_headers(sdk.api_client))
        if response.status != 202:
            raise CvatError(f"CVAT at {cvat.shown} answered {response.status} to an export of task {task}")
        return json.loads(response.data)["rq_id"]


def _status(cvat, task: int, rq_id: str) -> tuple[str, str | None, str]:
    """(status, result URL, message) of a CVAT background request."""
    with cvat._errors(f"check the export of task {task}", task):
        request, _ = cvat._sdk().api_client.requests_api.retrieve(rq_id)
        status = getattr(request.status, "value", request.status)
        return str(status), getattr(request, "result_url", None), str(getattr(request, "message", "") or "")


@dataclass
class _Download:
    chunks: Iterator[bytes]  # CHUNK bytes at a time, undecoded; the connection is released at the end
    headers: dict[str, str]  # CVAT's, those in PASSED_HEADERS (and Content-Encoding)
    media_type: str


def _download(cvat, task: int, url: str) -> _Download:
    """Open CVAT's file for streaming."""
    from cvat_sdk.core.helpers import make_request_headers

    ours, theirs = urlsplit(cvat.url), urlsplit(url)
    if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):  # our token goes to our CVAT only
        raise CvatError(f"CVAT at {cvat.shown} pointed the export of task {task} at another server; not followed")
    with cvat._errors(f"download the export of task {task}", task):
        sdk = cvat._sdk()
        answer = sdk.api_client.rest_client.GET(url, headers=make_request_headers(sdk.api_client),
                                                _parse_response=False)
    if answer.status != 200:
        answer.release_conn()
        raise CvatError(f"CVAT at {cvat.shown} answered {answer.status} to the download of task {task}'s export")

    def chunks() -> Iterator[bytes]:
        try:
            while chunk := answer.read(amt=CHUNK, decode_content=False):
                yield chunk
        finally:
            answer.release_conn()

    headers = {k.title(): v for k, v in answer.headers.items()
               if k.lower() in PASSED_HEADERS and k.lower() != "content-type"}
    if answer.headers.get("content-encoding"):  # the bytes are passed on undecoded, so say how they are encoded
        headers["Content-Encoding"] = answer.headers["content-encoding"]
    return _Download(chunks(), headers, answer.headers.get("content-type", "application/octet-stream"))


def _file_name(task: int, file: str | None, disposition: str) -> str:
    """A safe object name: the fork's `file` or CVAT's attachment name, as letters, digits, `._-` only."""
    found = re.search(r'filename="?([^";]+)"?', disposition or "")
    name = file or (found.group(1) if found else "") or f"task_{task}_dataset.zip"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name.rsplit("/", 1)[-1]).lstrip(".") or f"task_{task}_dataset"
    return name if name.lower().endswith(".zip") else f"{name}.zip"


def _save(services: Services, task: int, file: str | None, download: _Download) -> JSONResponse:
    """Write the streamed file to a temporary file (never all in memory), put it in the store, say where."""
    key = f"exports/task-{task}/{_file_name(task, file, download.headers.get('Content-Disposition', ''))}"
    with tempfile.NamedTemporaryFile(prefix="cvatflow-export-", suffix=".zip") as tmp:
        for chunk in download.chunks:
            tmp.write(chunk)
        tmp.flush()
        services.client.store.put_file(tmp.name, key)
    what = "annotations have been dumped" if file else "dataset has been exported"
    return JSONResponse({"message": f"Your {what} to {services.client.store.uri_for(key)}"})


def export(request: Request, services: Services, task: int, format_name: str, images: bool,
           action: str | None, file: str | None = None) -> Response:
    """One step of CVAT 1.0's polled export: 202 preparing, 201 ready, or the file when `action=download`."""
    exports, key, cvat = _exports(request), (task, format_name, images), services.cvat()
    current = exports.get(key)
    if current is None:
        exports.put(key, _Export(_start(cvat, task, format_name, images)))
        return JSONResponse({}, status_code=202)
    if current.result_url is None:
        status, url, message = _status(cvat, task, current.rq_id)
        if status == "failed":
            exports.put(key, None)  # the next GET starts over, as CVAT 1.0 did after a failed dump
            raise CvatError(f"CVAT could not export task {task} as {format_name!r}: {message or 'no reason given'}")
        if status != "finished" or not url:
            return JSONResponse({}, status_code=202)
        current.result_url = url
    if action != "download":
        return JSONResponse({}, status_code=201)
    exports.put(key, None)  # CVAT keeps the file a while; a later export asks for a fresh one
    download = _download(cvat, task, current.result_url)
    if "application/json" in request.headers.get("accept", ""):
        return _save(services, task, file, download)
    return StreamingResponse(download.chunks, headers=download.headers, media_type=download.media_type)


@router.get("/{task}/dataset", responses=EXPORT_RESPONSES, summary="The task's dataset (with images), prepared then downloaded")
def task_dataset(task: TaskId, format: Format, request: Request, services: ServicesDep,
                 action: Action = None) -> Response:
    return export(request, services, task, format, True, action)


@router.get("/{task}/annotations/{file}", responses=EXPORT_RESPONSES, summary="The task's annotations (no images), prepared then downloaded")
def task_annotations(task: TaskId, file: Annotated[str, Path(max_length=255)], format: Format, request: Request,
                     services: ServicesDep, action: Action = None) -> Response:
    """`file` names the object in the store when the fork asks; a download keeps CVAT's Content-Disposition."""
    return export(request, services, task, format, False, action, file)
