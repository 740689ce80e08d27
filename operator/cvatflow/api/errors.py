"""Every error leaves the API as one JSON shape, {message, problems}, with the status its exception names."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cvatflow.api.models import ErrorBody, Problem
from cvatflow.errors import CvatflowError, ProblemsError, errors_only

log = logging.getLogger("cvatflow.api")

# Documented on every route that can answer them, so clients (and schemathesis) know the shape.
ERROR_RESPONSES = {
    401: {"model": ErrorBody, "description": "No bearer token, or one that is not accepted."},
    404: {"model": ErrorBody, "description": "No such template, execution or CVAT task."},
    422: {"model": ErrorBody, "description": "The request or a parameter value is invalid; every problem is listed."},
}


def error_body(error: CvatflowError) -> ErrorBody:
    """The body for one of our exceptions: a ProblemsError lists each problem, others are one message."""
    if isinstance(error, ProblemsError):
        problems = [Problem.of(p) for p in errors_only(error.problems)]
        first = problems[0].message if len(problems) == 1 else f"{len(problems)} problems"
        return ErrorBody(message=f"{error.source}: {first}", problems=problems)
    return ErrorBody(message=str(error))


def answer(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def status_of(error: CvatflowError) -> int:
    status = int(getattr(error, "status_code", 400) or 400)
    return status if 400 <= status < 600 else 400


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into {message, problems} answers."""

    @app.exception_handler(CvatflowError)
    async def cvatflow_error(request: Request, error: CvatflowError) -> JSONResponse:
        return answer(status_of(error), error_body(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        body = error.detail if isinstance(error.detail, ErrorBody) else ErrorBody(message=str(error.detail))
        return answer(error.status_code, body, getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item.get("loc", ()) if part not in ("body",))
            problems.append(Problem(path=where, message=str(item.get("msg", "invalid")),
                                    fix="see the OpenAPI document at /openapi.json"))
        message = problems[0].message if len(problems) == 1 else f"{len(problems)} problems in the request"
        return answer(422, ErrorBody(message=message, problems=problems))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # A bug, not a bad input: keep the traceback in the server log, give the client one line.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return answer(500, ErrorBody(message=f"internal error ({error.__class__.__name__}); see the server log"))
