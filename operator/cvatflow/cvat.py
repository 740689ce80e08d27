"""The CVAT client side (cvat-sdk): tasks, labels, dataset export with images, annotation upload, and the dump."""
from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cvatflow.config import secret
from cvatflow.errors import CvatAuthError, CvatError, CvatNotFound, CvatUnreachable, CvatVersionError

TOKEN_ENV = "CVAT_ACCESS_TOKEN"
# The SDK polls export and import requests; a second is quick for small tasks and cheap for big ones.
STATUS_CHECK_SECONDS = 1.0
# progress(done, total) as in cvatflow.storage
Progress = Callable[[int, int], None]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskInfo:
    """A CVAT task as training needs it: id, name, project, status, number of frames, label names."""

    id: int
    name: str
    project_id: int | None
    status: str
    size: int | None
    labels: list[str] = field(default_factory=list)


class _SdkProgress:
    """Feeds the SDK's download/upload progress to a `progress(done, total)` callback."""

    def __new__(cls, progress: Progress | None):
        if progress is None:
            return None
        from cvat_sdk.core.progress import BaseProgressReporter

        class Reporter(BaseProgressReporter):
            def start2(self, total, *, desc=None, unit="it", unit_scale=False, unit_divisor=1000, **kwargs):
                super().start2(total, desc=desc, unit=unit, unit_scale=unit_scale, unit_divisor=unit_divisor,
                               **kwargs)
                self.total, self.done = total or 0, 0

            def advance(self, delta: int) -> None:
                super().advance(delta)
                self.done += delta
                progress(self.done, max(self.total, self.done))

        return Reporter()


class CvatClient:
    """One CVAT server, reached through cvat-sdk with a personal access token.

    `token` defaults to $CVAT_ACCESS_TOKEN. A token is sent as `Authorization: Bearer <token>` (CVAT's
    personal access tokens); a legacy API key written as "Token <key>" is sent with the Token scheme.
    Every failure is one CvatError subclass whose message names the server, never the token.
    """

    def __init__(self, url: str, token: str | None = None, status_check_period: float | None = None) -> None:
        if not url:
            raise CvatError("no CVAT server URL; pass --cvat-url or set CVAT_URL")
        try:
            urlsplit(url).port  # noqa: B018 (reading it checks it) "http://[::1" or a port of letters
        except ValueError as exc:
            raise CvatError(f"{shown_url(url)!r} is not a CVAT URL ({exc}); use http(s)://host[:port]") from None
        self.url = url.rstrip("/")
        self.shown = shown_url(self.url)  # what messages and logs name: the URL without a password in it
        self._token = token if token is not None else secret(TOKEN_ENV) or None
        self._status_check_period = status_check_period or STATUS_CHECK_SECONDS  # read now: tests shorten it
        self._client = None

    # -- connection ---------------------------------------------------------------------------------

    def _sdk(self):
        if self._client is None:
            from cvat_sdk.core.client import AccessTokenCredentials, Client, Config

            with self._errors("connect"):
                # The version is checked here (check_server_version=False): the SDK's own check ends in a
                # TypeError when the server's /api/server/about lacks fields its model requires.
                client = Client(self.url, logger=logging.getLogger("cvatflow.cvat.sdk"),
                                config=Config(status_check_period=self._status_check_period),
                                check_server_version=False)
                self._check_version(client)
                if self._token:
                    if self._token.startswith("Token "):
                        client.api_client.configuration.api_key["tokenAuth"] = self._token[len("Token "):]
                        client.api_client.configuration.api_key_prefix["tokenAuth"] = "Token"
                    else:
                        client.login(AccessTokenCredentials(self._token))
            self._client = client
        return self._client

    def _check_version(self, client) -> None:
        """Read the server's version; a server the SDK cannot read is a CvatVersionError naming both versions,
        one outside the SDK's supported range a warning (logged, once per client), as the SDK itself gives."""
        from cvat_sdk.api_client import exceptions as api_exceptions

        try:
            self.server_version = str(client.get_server_version())
        except api_exceptions.ApiException:
            raise  # HTTP errors: unreachable, not CVAT... (_errors says which)
        except (TypeError, ValueError, api_exceptions.OpenApiException):
            about = self._raw_about(client)
            self.server_version = str(about.get("version") or "unknown")
            missing = [f for f in ABOUT_FIELDS if f not in about]
            why = f"its /api/server/about lacks {', '.join(missing)}" if missing else "its /api/server/about differs"
            raise CvatVersionError(self._incompatible(why)) from None
        if not server_supported(self.server_version):
            log.warning("CVAT at %s is version %s; cvat-sdk %s (used by cvatflow) supports CVAT %s. Some requests "
                        "may fail: upgrade CVAT, or install a cvat-sdk matching it (pip install 'cvat-sdk~=%s.0')",
                        self.shown, self.server_version, sdk_version(), supported_range(),
                        _major_minor(self.server_version))

    def _raw_about(self, client) -> dict[str, Any]:
        try:
            _, response = client.api_client.server_api.retrieve_about(_parse_response=False)
            about = json.loads(response.data)
        except (ValueError, OSError):
            return {}
        return about if isinstance(about, dict) else {}

    def _incompatible(self, why: str) -> str:
        server = getattr(self, "server_version", None) or "unknown"
        return (f"CVAT at {self.shown} is version {server}, which cvat-sdk {sdk_version()} (used by cvatflow) cannot "
                f"talk to: {why}. cvatflow supports CVAT {supported_range()}; upgrade the CVAT server, or install "
                f"the cvat-sdk release made for it (pip install 'cvat-sdk~={_major_minor(server)}.0')")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> CvatClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------------

    def task(self, task_id: int) -> TaskInfo:
        """The task with its label names; CvatNotFound if it does not exist (or the token cannot see it)."""
        with self._errors(f"read task {task_id}", task_id):
            task = self._sdk().tasks.retrieve(int(task_id))
            return self._info(task, self._label_names(task))

    def labels(self, task_id: int) -> list[str]:
        """The task's label names in CVAT's order (project labels for a task in a project)."""
        return self.task(task_id).labels

    def list_tasks(self) -> list[TaskInfo]:
        """Every task the token can see, with labels (one labels request per task)."""
        with self._errors("list tasks"):
            return [self._info(t, self._label_names(t)) for t in self._sdk().tasks.list()]

    def annotations(self, task_id: int) -> dict[str, Any]:
        """The task's annotations as CVAT's JSON: {"version", "tags", "shapes", "tracks"}."""
        with self._errors(f"read the annotations of task {task_id}", task_id):
            api = self._sdk().api_client.tasks_api
            _, response = api.retrieve_annotations(int(task_id), _parse_response=False)
            return json.loads(response.data)

    def annotation_counts(self, task_id: int) -> int:
        """Annotated objects in the task: shapes, tags and tracks (a track counts once)."""
        data = self.annotations(task_id)
        return sum(len(data.get(kind) or []) for kind in ("shapes", "tags", "tracks"))

    # -- export and import --------------------------------------------------------------------------

    def export(self, task_id: int, format_name: str, out_path: str | Path, include_images: bool = True,
               progress: Progress | None = None) -> Path:
        """Export the task as `format_name` (e.g. "COCO 1.0") into the zip `out_path` and return its path.

        CVAT exports in the background; the SDK requests it, polls the request and downloads the result.
        """
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.unlink(missing_ok=True)  # the SDK refuses to overwrite
        with self._errors(f"export task {task_id} as {format_name!r}", task_id):
            from cvat_sdk.core.proxies.types import Location

            task = self._sdk().tasks.retrieve(int(task_id))
            result = task.export_dataset(format_name, out_path, include_images=include_images,
                                         location=Location.LOCAL, pbar=_SdkProgress(progress),
                                         status_check_period=self._status_check_period)
        return Path(result or out_path)

    def upload_annotations(self, task_id: int, coco_json_path: str | Path, format_name: str = "COCO 1.0") -> None:
        """Import an annotation file (COCO JSON by default, e.g. predictions) into the task."""
        path = Path(coco_json_path)
        if not path.is_file():
            raise CvatError(f"{path}: no such annotation file to upload")
        with self._errors(f"import {format_name!r} annotations into task {task_id}", task_id):
            task = self._sdk().tasks.retrieve(int(task_id))
            task.import_annotations(format_name, path, status_check_period=self._status_check_period)

    # -- helpers ------------------------------------------------------------------------------------

    def auto_annotate(self, task_id: int, function, *, threshold: float | None = None, clear_existing: bool = False,
                      allow_unmatched_labels: bool = True, conv_mask_to_poly: bool = False,
                      progress: Progress | None = None) -> None:
        """Run cvat_sdk.auto_annotation.annotate_task: the task's frames through `function` (a DetectionFunction),
        the shapes uploaded (added, or replacing all annotations with `clear_existing`). Labels match by name; a
        function label the task lacks is skipped (`allow_unmatched_labels`). Frames are cached in a temporary
        folder removed afterwards. Raises CvatError subclasses; BadFunctionError for a function breaking the
        interface."""
        from cvat_sdk.auto_annotation import annotate_task

        client = self._sdk()
        with tempfile.TemporaryDirectory(prefix="cvatflow-frames-") as cache, \
                self._errors(f"annotate task {task_id}", task_id):
            before = client.config.cache_dir
            client.config.cache_dir = Path(cache)
            try:
                annotate_task(client, task_id, function, pbar=_SdkProgress(progress), clear_existing=clear_existing,
                              allow_unmatched_labels=allow_unmatched_labels, conf_threshold=threshold,
                              conv_mask_to_poly=conv_mask_to_poly)
            finally:
                client.config.cache_dir = before

    def _label_names(self, task) -> list[str]:
        # Skeleton points are sublabels (parent_id set) and tag labels mark whole images: training classes are
        # the other top-level labels.
        return [label.name for label in task.get_labels()
                if not getattr(label, "parent_id", None) and str(getattr(label, "type", "") or "") != "tag"]

    @staticmethod
    def _info(task, labels: list[str]) -> TaskInfo:
        status = task._model.get("status")
        return TaskInfo(id=int(task.id), name=str(task._model.get("name") or ""),
                        project_id=task._model.get("project_id"),
                        status=str(getattr(status, "value", status) or ""),
                        size=task._model.get("size"), labels=labels)

    @contextmanager
    def _errors(self, action: str, task_id: int | None = None) -> Iterator[None]:
        """Turn the SDK's and urllib3's exceptions into one CvatError that a user can act on."""
        import urllib3
        from cvat_sdk.api_client import exceptions as api_exceptions
        from cvat_sdk.core.exceptions import (
            BackgroundRequestException,
            CvatSdkException,
            InvalidHostException,
        )

        what = action
        where = f"CVAT at {self.shown}"
        try:
            yield
        except CvatError:
            raise
        except api_exceptions.ApiException as exc:
            status = getattr(exc, "status", None)
            detail = self._detail(exc)
            if status == 401:
                raise CvatAuthError(f"{where} refused the access token (HTTP 401) when asked to {what}; set "
                                    f"{TOKEN_ENV} to a valid personal access token") from None
            if status == 403:
                raise CvatAuthError(f"{where} does not let this token {what} (HTTP 403); use a token of a user "
                                    f"who can see the task") from None
            if status == 404:
                raise CvatNotFound(f"{where}: task {task_id} does not exist (or this token cannot see it); check "
                                   f"the task id" if task_id is not None else f"{where}: not found ({what})") from None
            if status in (400, 405) and action.startswith("export"):
                raise CvatError(f"{where} cannot {what}: {detail or f'HTTP {status}'}; use one of the formats "
                                f"CVAT lists for the task") from None
            raise CvatError(self._clean(f"{where} failed to {what}: HTTP {status} {detail}".rstrip())) from None
        except BackgroundRequestException as exc:
            raise CvatError(self._clean(f"{where} could not {what}: {str(exc)[:300] or 'the request failed'}")) \
                from None
        except InvalidHostException as exc:
            raise CvatError(f"{self.shown!r} is not a CVAT URL ({exc}); use http(s)://host[:port]") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise CvatUnreachable(self._clean(f"{where} cannot be reached to {what} ({reason.__class__.__name__}); "
                                              f"check CVAT_URL and that the server is up")) from None
        except (CvatSdkException, api_exceptions.OpenApiException) as exc:
            # e.g. a response the SDK's models cannot read: a CVAT version too far from the SDK's
            raise CvatVersionError(self._clean(self._incompatible(f"asked to {what}, it answered something the "
                                                                  f"SDK cannot read ({str(exc)[:200]})"))) from None
        except TypeError as exc:
            if not _raised_in_sdk_models(exc):
                raise
            raise CvatVersionError(self._clean(self._incompatible(f"asked to {what}, it answered something the SDK's "
                                                                  f"models cannot read ({str(exc)[:200]})"))) from None

    @staticmethod
    def _detail(exc) -> str:
        body = getattr(exc, "body", None)
        if isinstance(body, bytes):
            body = body.decode(errors="replace")
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return str(body)[:200]
        if isinstance(data, dict):
            return str(data.get("detail") or data.get("message") or data)[:200]
        if isinstance(data, list):
            return "; ".join(str(d) for d in data)[:200]
        return ""

    def _clean(self, message: str) -> str:
        """Never let the token reach a message, whatever the server echoed back."""
        if self._token:
            for secret in {self._token, self._token.removeprefix("Token ")}:
                if len(secret) >= 6:  # a shorter "token" is no secret, and would blot out ordinary words
                    message = message.replace(secret, "***")
        return message


def shown_url(url: str) -> str:
    """`url` with the password of its user part (https://user:password@host) as ***: fit for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@]*@", "//***@", url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


ABOUT_FIELDS = ("name", "description", "version", "logo_url", "subtitle")  # cvat-sdk 2.80's About model requires


def sdk_version() -> str:
    from cvat_sdk.version import VERSION

    return VERSION


def supported_range() -> str:
    """The CVAT server versions the installed cvat-sdk supports, by its own rule (the same major.minor or the
    next one: cvat_sdk.core.client.Client.SUPPORTED_SERVER_VERSIONS), e.g. ">=2.80,<2.82"."""
    from cvat_sdk.core.client import Client

    versions = sorted(Client.SUPPORTED_SERVER_VERSIONS)
    last = versions[-1]
    return f">={versions[0].major}.{versions[0].minor},<{last.major}.{last.minor + 1}"


def server_supported(version: str) -> bool:
    """Whether a CVAT server `version` is in supported_range()."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) in SpecifierSet(supported_range())
    except InvalidVersion:
        return False


def _major_minor(version: str) -> str:
    parts = str(version).split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]) else "<server version>"


def _raised_in_sdk_models(exc: BaseException) -> bool:
    """A TypeError from cvat-sdk's generated models (a field the server did not send), not from our own code."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_globals.get("__name__", "")
        tb = tb.tb_next
    return bool(last) and last.startswith(("cvat_sdk.api_client.model", "cvat_sdk.api_client.model_utils"))


def dump_task(cvat_url: str, task_id: int, dump_format_tag: str, store_uri: str, token: str | None = None,
              repository=None, progress: Progress | None = None, now: datetime | None = None
              ) -> tuple[str, list[str]]:
    """Export a task with images in the `dump-format` tag's format and upload it as a dataset.

    Returns (`annotations/<task id>/<MMDDYYYYHHMMSS>/`, the task's label names): the values of
    cvat-annotation-path and (by their count) cvat-num-classes.
    """
    from cvatflow.datasets.formats import export_format
    from cvatflow.datasets.upload import upload_export

    format_name = export_format(dump_format_tag)  # an unknown tag fails before CVAT is asked anything
    with CvatClient(cvat_url, token) as client:
        info = client.task(task_id)
        with tempfile.TemporaryDirectory(prefix="cvatflow-dump-") as tmp:
            export = client.export(task_id, format_name, Path(tmp) / f"task_{int(task_id)}.zip", include_images=True)
            prefix = upload_export(export, store_uri, task_id=int(task_id), repository=repository,
                                   progress=progress, now=now)
    log.info("dumped CVAT task %s (%s) to %s", task_id, format_name, prefix)
    return prefix, info.labels
