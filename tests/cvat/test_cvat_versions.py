"""CVAT server versions: a server cvat-sdk cannot talk to is one clear error naming both versions, everywhere."""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api_fixtures import client, served, settings_for
from cvatflow.api import create_app
from cvatflow.cvat import CvatClient, CvatVersionError, sdk_version, server_supported, supported_range

# /api/server/about as older CVAT servers answer it: before logo_url and subtitle were added (CVAT 2.3-era).
OLD_ABOUT = {"name": "Computer Vision Annotation Tool", "description": "CVAT is completely re-designed and "
             "re-implemented version of Video Annotation Tool from Irvine, California.", "version": "2.3.0"}
# A server the SDK can read, outside the versions it was made for.
READABLE_OLD_ABOUT = {**OLD_ABOUT, "version": "2.20.0", "logo_url": "", "subtitle": ""}


@contextmanager
def cvat_answering(about: dict) -> Iterator[str]:
    """A CVAT that answers /api/server/about with `about` (and 404 to everything else)."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            found = self.path.startswith("/api/server/about")
            body = json.dumps(about if found else {"detail": "Not found."}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_supported_range_is_the_sdks_own_rule():
    assert supported_range() == ">=2.80,<2.82" and sdk_version() == "2.80.0"
    assert server_supported("2.80.3") and server_supported("2.81.0")
    assert not server_supported("2.79.9") and not server_supported("2.82.0") and not server_supported("dev")


def test_a_server_whose_about_the_sdk_cannot_read_is_one_error_naming_both_versions():
    with cvat_answering(OLD_ABOUT) as url, pytest.raises(CvatVersionError) as excinfo:
        CvatClient(url, "a-token-value").task(7)
    message = str(excinfo.value)
    assert message == (f"CVAT at {url} is version 2.3.0, which cvat-sdk 2.80.0 (used by cvatflow) cannot talk to: "
                       f"its /api/server/about lacks logo_url, subtitle. cvatflow supports CVAT >=2.80,<2.82; "
                       f"upgrade the CVAT server, or install the cvat-sdk release made for it "
                       f"(pip install 'cvat-sdk~=2.3.0')")
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__


def test_a_readable_server_outside_the_range_is_a_warning_not_silence(caplog):
    with cvat_answering(READABLE_OLD_ABOUT) as url, caplog.at_level(logging.WARNING):
        sdk = CvatClient(url, "Token legacy-key")._sdk()
    assert sdk is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("is version 2.20.0; cvat-sdk 2.80.0 (used by cvatflow) supports CVAT >=2.80,<2.82" in w
               for w in warnings), warnings


def test_dataset_dump_against_an_old_server_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "a-token-value")
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    with cvat_answering(OLD_ABOUT) as url:
        result = cli("dataset", "dump", "--cvat-url", url, "--cvat-task", 7, "--to", (tmp_path / "s").as_uri())
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err.strip().startswith("error:") and "version 2.3.0" in result.err and "2.80.0" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_the_api_answers_502_with_the_versions_not_500(tmp_path):
    with cvat_answering(OLD_ABOUT) as url:
        settings = settings_for(tmp_path / "home", cvat_url=url)
        with served(create_app(settings)) as api, client(api) as http:
            answer = http.get("/api/v1/cvat/tasks/7")
    assert answer.status_code == 502, answer.text
    assert "version 2.3.0" in answer.json()["message"] and "cvat-sdk 2.80.0" in answer.json()["message"]


def test_our_own_type_errors_are_not_blamed_on_the_server():
    with cvat_answering(READABLE_OLD_ABOUT) as url:
        cvat = CvatClient(url, "Token legacy-key")
        with pytest.raises(TypeError, match="ours"), cvat._errors("read task 7", 7):
            raise TypeError("ours")
