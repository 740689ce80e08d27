"""`create_app(settings)`: the FastAPI application with every router; the web UI mounts itself on it."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI

from cvatflow.api import (
    cvat_tasks,
    errors,
    executions,
    job_routes,
    limits,
    onepanel,
    onepanel_export,
    run_actions,
    templates,
    ui,
    uploads,
    vocabulary,
    webhooks,
)
from cvatflow.api.auth import Authenticator
from cvatflow.api.models import Health
from cvatflow.api.services import Services
from cvatflow.config import Settings, load_settings

ROUTERS = (templates.router, executions.router, job_routes.router, cvat_tasks.router, webhooks.router,
           onepanel.router, onepanel_export.router)
ROUTERS += (vocabulary.router, uploads.router)  # the UI's words; export uploads for runs without CVAT
ROUTERS += (run_actions.router,)  # stop, terminate, retry, resubmit, delete


def _version() -> str:
    try:
        return version("cvatflow")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(settings: Settings | None = None, *, client: Any = None, cvat: Callable[[], Any] | None = None,
               auth: Authenticator | None = None) -> FastAPI:
    """The app for `settings` (default: `load_settings()`): the local backend and store unless a cluster is
    configured. `client` (a cvatflow.runs.Client), `cvat` (a factory of CVAT clients) and `auth` replace the
    ones the settings would make. More routers (the web UI under /ui/) can be added with `include_router`."""
    settings = settings or load_settings()
    services = Services.build(settings, client=client, cvat=cvat, auth=auth)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        services.jobs.shutdown()

    app = FastAPI(title="cvatflow", version=_version(), lifespan=lifespan,
                  description="Train models from CVAT tasks with Argo WorkflowTemplates. Every endpoint but "
                              "/healthz and /openapi.json needs `Authorization: Bearer <token>`; CVAT webhooks "
                              "are authenticated by their X-Signature-256 instead.",
                  docs_url="/docs", redoc_url=None)
    app.state.services = services
    errors.install(app)
    limits.install(app, settings)

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Liveness (no token needed)")
    def healthz() -> Health:
        return Health(backend=services.client.kind, version=app.version)

    for router in ROUTERS:
        app.include_router(router)
    ui.install(app)
    return app
