"""The HTTP API (FastAPI): templates, executions, CVAT webhooks and the Onepanel-compatible endpoints."""
from cvatflow.api.app import create_app

__all__ = ["create_app"]
