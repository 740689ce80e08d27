"""PUT /api/v1/datasets/uploads/{name}: an export zip streamed to the server's dataset folder, for a run without CVAT.

The upload only stores the bytes (atomically, within `maxUploadBytes`); reading, checking and uploading the
dataset to the store happen when an execution names it, in the one submission pipeline (cvatflow.submission).
"""
from __future__ import annotations

import secrets
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from cvatflow.api.auth import require_token
from cvatflow.api.errors import ERROR_RESPONSES
from cvatflow.api.services import Services, get_services
from cvatflow.atomic import atomic_path
from cvatflow.errors import Problem, ProblemsError, UploadTooLarge

PREFIX = "/api/v1/datasets/uploads"
FOLDER = "uploads"  # under <home>/datasets, where an execution's `dataset` path may point
router = APIRouter(prefix=PREFIX, tags=["datasets"], dependencies=[Depends(require_token)],
                   responses=ERROR_RESPONSES)
ServicesDep = Annotated[Services, Depends(get_services)]
UploadName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.zip$",
                                 description="The export's file name (letters, digits, . _ -; ending in .zip).")]


class Upload(BaseModel):
    dataset: str = Field(description="What to give as `dataset` in POST /api/v1/executions.")
    size: int = Field(description="Bytes received.")


@router.put("/{name}", status_code=201, response_model=Upload,
            summary="Upload a CVAT export (zip) to train on without a CVAT server")
async def upload(name: UploadName, request: Request, services: ServicesDep) -> Upload:
    """The body is the zip itself (Content-Type application/zip); it is checked when an execution uses it."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("application/zip", "application/x-zip-compressed", "application/octet-stream"):
        raise ProblemsError("upload", [Problem("Content-Type", f"{media or '(none)'} is not a zip",
                                               "send the export with Content-Type: application/zip")])
    limit = services.settings.max_upload_bytes
    folder = services.settings.home / "datasets" / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    # A fresh name per upload: two users' `export.zip` never overwrite each other.
    stored = f"{FilePath(name).stem}-{secrets.token_hex(4)}.zip"
    size = 0
    with atomic_path(folder / stored) as tmp, tmp.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge(f"{name}: more than {limit} bytes; the server's maxUploadBytes setting allows "
                               f"at most that, or put the export in the store and give its URI")
            out.write(chunk)
    if size == 0:
        (folder / stored).unlink(missing_ok=True)
        raise ProblemsError("upload", [Problem("body", "empty", "send the export zip as the request body")])
    return Upload(dataset=f"{FOLDER}/{stored}", size=size)
