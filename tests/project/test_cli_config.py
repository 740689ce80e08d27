"""`cvatflow --config FILE <command>`: every command reads the file; `templates form` shows its node pools."""
from __future__ import annotations

import json


def test_global_config_reaches_templates_form(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CVATFLOW_CONFIG", "")  # restored after the test: --config sets it
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    config = tmp_path / "pools.yaml"
    config.write_text("nodePools:\n  options:\n    - {name: 'GPU: 1x T4', value: g4dn.xlarge}\n"
                      "    - {name: 'CPU: 4', value: m5.xlarge}\n")
    result = cli("--config", config, "templates", "form", "maskrcnn-training", "--json")
    assert result.code == 0, result.err
    pool = next(f for f in json.loads(result.out) if f["type"] == "select.nodepool")
    assert pool["options"] == [{"name": "GPU: 1x T4", "value": "g4dn.xlarge"},
                               {"name": "CPU: 4", "value": "m5.xlarge"}]


def test_global_config_that_is_missing_is_one_error(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CVATFLOW_CONFIG", "")  # restored after the test: --config sets it
    result = cli("--config", tmp_path / "nope.yaml", "templates", "list")
    assert result.code == 1
    assert "--config" in result.err and "nope.yaml: no such file" in result.err
    assert "Traceback" not in result.err


def test_global_config_is_read_by_load_settings(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CVATFLOW_CONFIG", "")  # restored after the test: --config sets it
    monkeypatch.setenv("CVATFLOW_HOME", str(tmp_path / "home"))
    config = tmp_path / "store.yaml"
    config.write_text(f"store: {(tmp_path / 'elsewhere').as_uri()}\n")
    result = cli("--config", config, "dataset", "upload", "--help")
    assert result.code == 0
    from cvatflow.config import load_settings

    assert load_settings().store == (tmp_path / "elsewhere").as_uri()  # the setting every command reads
