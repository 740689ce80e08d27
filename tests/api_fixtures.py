"""The API served for real by uvicorn on 127.0.0.1 in a background thread, and clients that carry a token."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from cvatflow.api import create_app
from cvatflow.config import Settings, load_settings

TOKEN = "api-test-token-0123456789"
SECRET = "webhook-test-secret"


def settings_for(home: Path, cvat_url: str = "", **overrides: Any) -> Settings:
    """Settings as `cvatflow serve` reads them from the environment, with a home of the test's own."""
    env = {"CVATFLOW_HOME": str(home), "CVATFLOW_API_TOKENS": TOKEN, "CVATFLOW_WEBHOOK_SECRET": SECRET}
    if cvat_url:
        env["CVAT_URL"] = cvat_url
    settings = load_settings(env=env)
    settings.events_interval = 0.1
    for key, value in overrides.items():
        if key == "extra":  # config-file keys, as in config.yaml
            settings.apply(value)
        else:
            setattr(settings, key, value)
    return settings


@contextmanager
def served(app) -> Iterator[str]:
    """Serve `app` on a free loopback port; yields its base URL and stops the server afterwards."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def client(base_url: str, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


def signed(payload: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    """A webhook delivery as CVAT sends it: the JSON body and its X-Signature-256."""
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Signature-256": f"sha256={digest}"}


def wait_for(check, timeout: float = 60, interval: float = 0.1):
    """Poll `check()` until it returns something truthy; fail with the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting; last value: {value!r}")


TINY = "tiny-training"


def install_tiny_template(home: Path, name: str = TINY, step_args: tuple[str, ...] = ("templates", "list")) -> None:
    """A template for CVAT whose one step is a fast cvatflow command, where the local backend finds it."""
    from cvatflow.templates import Parameter, Template, to_yaml
    from cvatflow.templates.render import render

    spec = {"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": [{"name": "train", "template": "train"}]}},
        {"name": "train", "container": {
            "image": "ghcr.io/cvatflow/maskrcnn:0.1.0", "command": ["cvatflow"],
            "args": list(step_args)}},
    ]}
    parameters = [
        Parameter("cvat-annotation-path", "", type="hidden", visibility="private"),
        Parameter("cvat-num-classes", "", type="hidden", visibility="private"),
        Parameter("epochs", "1", display_name="Epochs", type="input.number", required=True,
                  hint='Passes over the data; see <a href="https://example.org/epochs">epochs</a>.'),
        Parameter("cvat-finetune-checkpoint", "", display_name="Checkpoint"),
    ]
    template = Template(name, parameters, spec, title="Tiny training", labels={"used-by": "cvat"})
    folder = home / "templates"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(to_yaml(render(template)))


@contextmanager
def tiny_api(home: Path, cvat_url: str, **overrides: Any) -> Iterator[tuple[str, Settings]]:
    """The API served with the tiny template installed and the given CVAT; yields (URL, settings)."""
    install_tiny_template(home)
    settings = settings_for(home, cvat_url=cvat_url, **overrides)
    with served(create_app(settings)) as url:
        yield url, settings

