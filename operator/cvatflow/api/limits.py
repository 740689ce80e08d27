"""Every request body is checked before a route sees it: size (413), media type (415), JSON nesting depth (400)."""
from __future__ import annotations

from typing import Any

from fastapi.encoders import jsonable_encoder
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cvatflow.api.models import ErrorBody, Problem
from cvatflow.jsonlimits import MAX_DEPTH, MAX_REQUEST_BYTES, too_deep

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class RequestLimits:
    """ASGI middleware for every route that takes a body (all are JSON: /api/v1/..., /onepanelio/...).

    A body over `max_bytes` answers 413 before it is read in full; a non-empty body whose Content-Type is
    not JSON answers 415; JSON nested deeper than `max_depth` answers 400, before the JSON parser could
    overflow its stack. Bodies under the limits pass on unchanged (replayed from memory).
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_REQUEST_BYTES, max_depth: int = MAX_DEPTH) -> None:
        self.app, self.max_bytes, self.max_depth = app, int(max_bytes), int(max_depth)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS or self._streamed(scope):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        declared = headers.get("content-length", "")
        if declared.strip().isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, 413, self._too_large(int(declared)))
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, 413, self._too_large(size, at_least=True))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body.strip():
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if not (media == "application/json" or media.endswith("+json")):
                await self._refuse(scope, receive, send, 415, ErrorBody(
                    message=f"Content-Type {media or '(none)'!r} is not JSON; send the body as application/json",
                    problems=[Problem(path="Content-Type", message="the body must be JSON",
                                      fix="set the header Content-Type: application/json")]))
                return
            if too_deep(body, self.max_depth):
                await self._refuse(scope, receive, send, 400, ErrorBody(
                    message=f"the JSON body is nested more than {self.max_depth} levels deep; refusing it",
                    problems=[Problem(path="body", message=f"nesting over {self.max_depth} levels",
                                      fix="send a flatter body")]))
                return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    def _streamed(scope: Scope) -> bool:
        """An export upload is streamed to disk by its route, under its own limit (maxUploadBytes)."""
        from cvatflow.api.uploads import PREFIX

        return scope["method"] == "PUT" and str(scope.get("path", "")).startswith(PREFIX + "/")

    def _too_large(self, size: int, at_least: bool = False) -> ErrorBody:
        amount = f"{'more than ' if at_least else ''}{size if not at_least else self.max_bytes} bytes"
        return ErrorBody(message=f"the request body is {amount}, over the limit of {self.max_bytes} bytes",
                         problems=[Problem(path="body", message="too large",
                                           fix=f"send at most {self.max_bytes} bytes (the server's "
                                               f"maxRequestBytes setting)")])

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, body: ErrorBody) -> None:
        # Connection: close, since the rest of an unread body would otherwise be taken for the next request.
        response = JSONResponse(jsonable_encoder(body), status_code=status, headers={"Connection": "close"})
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: a disconnect, as from the server

    return replay


def install(app: Any, settings: Any) -> None:
    """Add the limits to `app`; `maxRequestBytes` and `maxJsonDepth` in the config file change them."""
    app.add_middleware(RequestLimits, max_bytes=getattr(settings, "max_request_bytes", MAX_REQUEST_BYTES),
                       max_depth=getattr(settings, "max_json_depth", MAX_DEPTH))
