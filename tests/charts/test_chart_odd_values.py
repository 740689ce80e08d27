"""The chart with values a user may well write: a default map removed with null (Helm's way to drop a default)."""
from __future__ import annotations

from chart_fixtures import only, render
from cvatflow.config import load_settings


def test_node_pools_removed_with_null_render_a_config_with_none(tmp_path):
    # was: "error calling deepCopy: reflect: call of reflect.Value.Type on zero Value" from configmap.yaml
    config = only(render({"config": {"nodePools": None}}), "ConfigMap", "rel-cvatflow-config")["data"]["config.yaml"]
    (tmp_path / "config.yaml").write_text(config)
    assert load_settings(tmp_path / "config.yaml", env={"CVATFLOW_HOME": str(tmp_path)}).node_pools.pools == []


def test_controller_resources_removed_with_null_keep_the_dump_space_request():
    deployment = only(render({"controller": {"resources": None}}), "Deployment", "rel-cvatflow-controller")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {"requests": {"ephemeral-storage": "20Gi"}}
