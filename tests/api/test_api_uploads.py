"""PUT /api/v1/datasets/uploads/{name}: an export streamed to disk within its limit, usable as an execution's dataset."""
from __future__ import annotations

from api_fixtures import client, served, settings_for
from cvatflow.api import create_app

ZIP = {"Content-Type": "application/zip"}


def uploaded(home):
    folder = home / "datasets" / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_an_upload_is_stored_under_a_fresh_name_and_named_for_the_execution(tmp_path):
    home = tmp_path / "home"
    with served(create_app(settings_for(home))) as url, client(url) as http:
        first = http.put("/api/v1/datasets/uploads/export.zip", content=b"PK\x03\x04 one", headers=ZIP)
        second = http.put("/api/v1/datasets/uploads/export.zip", content=b"PK\x03\x04 two", headers=ZIP)
        assert first.status_code == second.status_code == 201, first.text
        assert first.json()["dataset"] != second.json()["dataset"]  # two users' export.zip never collide
        assert first.json()["dataset"].startswith("uploads/export-") and first.json()["size"] == 8
        # A broken zip is refused when an execution uses it, naming the upload, not a temporary path.
        answer = http.post("/api/v1/executions", json={"template": "detr-training", "dataset": first.json()["dataset"]})
        assert answer.status_code == 202, answer.text
    assert len(uploaded(home)) == 2 and not [n for n in uploaded(home) if n.startswith(".")]


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(tmp_path):
    home = tmp_path / "home"
    settings = settings_for(home)
    settings.max_upload_bytes = 1000
    with served(create_app(settings)) as url, client(url) as http:
        answer = http.put("/api/v1/datasets/uploads/big.zip", content=b"x" * 5000, headers=ZIP)
        assert answer.status_code == 413, answer.text
        assert "maxUploadBytes" in answer.json()["message"]
        not_zip = http.put("/api/v1/datasets/uploads/a.zip", content=b"{}", headers={"Content-Type": "application/json"})
        assert not_zip.status_code == 422 and "not a zip" in not_zip.text
        empty = http.put("/api/v1/datasets/uploads/a.zip", content=b"", headers=ZIP)
        assert empty.status_code == 422
        for name in ("..%2Fescape.zip", ".hidden.zip", "x.tar"):
            assert http.put(f"/api/v1/datasets/uploads/{name}", content=b"PK", headers=ZIP).status_code in (404, 422)
        assert http.put("/api/v1/datasets/uploads/a.zip", content=b"PK", headers={**ZIP, "Authorization": ""}
                        ).status_code == 401
    assert uploaded(home) == []
