"""`cvatflow serve`: run the HTTP API with uvicorn (local backend and store unless a cluster is configured)."""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from cvatflow.config import Settings, load_settings

TOKEN_FILE = "api-token"


def ensure_token(settings: Settings, echo=typer.echo) -> None:
    """With no token configured, make one and keep it in <home>/api-token (mode 600): the API is never open,
    and the token is never printed (logs are read by more people than the machine's owner)."""
    if settings.api_tokens or settings.token_review:
        return
    path = settings.home / TOKEN_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    settings.api_tokens = [path.read_text().strip()]
    echo(f"No CVATFLOW_API_TOKENS set: the API token is in {path}")


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
        config: Annotated[Path | None, typer.Option("--config", help="Settings file (default: "
                                                    "$CVATFLOW_CONFIG or <home>/config.yaml).")] = None,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    ) -> None:
        """Serve the HTTP API: templates, executions, CVAT webhooks, Onepanel-compatible endpoints."""
        import uvicorn

        from cvatflow.api.app import create_app

        settings = load_settings(config)
        ensure_token(settings)
        logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
        typer.echo(f"cvatflow API on http://{host}:{port} (backend {settings.backend}, store {settings.store})")
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, proxy_headers=True)
