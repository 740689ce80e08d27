"""GET /api/v1/vocabulary serves Argo's and cvatflow's words to the web UI, whose JavaScript copies none of them."""
from __future__ import annotations

import re

from api_fixtures import client, served, settings_for
from cvatflow.api import create_app
from cvatflow.argo import Phase
from cvatflow.errors import codes
from cvatflow.templates.parameter import LEGACY_ALIASES, RESERVED
from paths import ROOT

STATIC = ROOT / "operator" / "cvatflow" / "api" / "static"


def test_the_vocabulary_is_served_from_the_modules_that_own_it(tmp_path):
    with served(create_app(settings_for(tmp_path / "home"))) as url, client(url) as http:
        answer = http.get("/api/v1/vocabulary")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert http.get("/api/v1/vocabulary", headers={"Authorization": ""}).status_code == 401
    assert body["phase"] == {p.name: p.value for p in Phase}
    assert body["finished"] == ["Succeeded", "Failed", "Error"]
    assert body["runPhases"] == ["Preparing", "Pending", "Running", "Succeeded", "Failed", "Error"]
    assert {p["name"] for p in body["phases"] if p["source"] == "cvatflow"} == {"Invalid", "Submitted", "Preparing"}
    assert sorted(body["reserved"].values()) == sorted(RESERVED)
    assert body["aliases"] == LEGACY_ALIASES
    assert "sys-num-classes" in body["autoFilled"] and "cvat-finetune-checkpoint" not in body["autoFilled"]
    assert body["errors"] == codes() and body["errors"]["NotFoundError"] == 404
    assert body["messages"]["checkpointMissing"] == "Checkpoint path does not exist in object storage."


def test_the_ui_javascript_hard_codes_no_phase_or_reserved_parameter():
    words = [p.value for p in Phase] + list(RESERVED) + list(LEGACY_ALIASES) + ["does not exist in object storage"]
    pattern = re.compile(r"""["'`]([^"'`\n]*)["'`]""")
    found = []
    for path in sorted(STATIC.glob("*.js")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("//"):
                continue
            for literal in pattern.findall(line):
                if any(literal == w or (len(w) > 12 and w in literal) for w in words):
                    found.append(f"{path.name}:{number}: {literal!r}")
    assert found == [], "take these from GET /api/v1/vocabulary (static/vocabulary.js)"
