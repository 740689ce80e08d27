"""What every router module of the API shares: its router (auth and error answers) and the Services dependency."""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from cvatflow.api.auth import require_token
from cvatflow.api.errors import ERROR_RESPONSES
from cvatflow.api.services import Services, get_services

#: A route's `services` argument: the app's Services, from app.state.
ServicesDep = Annotated[Services, Depends(get_services)]


def api_router(prefix: str, tag: str, auth: Callable[..., Any] = require_token) -> APIRouter:
    """An APIRouter at `prefix` under the OpenAPI tag `tag`, every route behind `auth` (a FastAPI dependency:
    the bearer token by default) and documenting the shared error answers (ERROR_RESPONSES)."""
    return APIRouter(prefix=prefix, tags=[tag], dependencies=[Depends(auth)], responses=ERROR_RESPONSES)
