"""`cvatflow model pack|inspect|import`, and the adapters' registry."""
from __future__ import annotations

import json
import tarfile

import pytest
from typer.testing import CliRunner

from cvatflow.errors import TrainingError
from cvatflow.models import ADAPTERS, get_adapter, variants
from cvatflow.models.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Bare weights of a small DETR with two classes, as if trained elsewhere."""
    import torch

    adapter = get_adapter("detr")
    model = adapter.build(adapter.settings("detr_small", 128), 2, pretrained=False)
    path = tmp_path_factory.mktemp("w") / "detr.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_registry_and_variants():
    assert set(ADAPTERS) == {"detr", "maskrcnn", "rtdetr", "interactive"}
    assert "maskrcnn_resnet50_fpn_v2" in variants("maskrcnn") and "detr_small" in variants("detr")
    for name in ADAPTERS:
        adapter = get_adapter(name)
        assert adapter.small_variant in adapter.VARIANTS and adapter.default_variant in adapter.VARIANTS
    with pytest.raises(TrainingError, match="choose one of detr, maskrcnn"):
        get_adapter("yolo")


def test_import_inspect_pack(weights, tmp_path):
    state = tmp_path / "state"
    result = invoke("import", weights, "--model", "detr", "--variant", "detr_small", "--classes", "cat, dog",
                    "-o", state, "--image-size", "128")
    assert result.exit_code == 0, result.output
    config = json.loads((state / "config.json").read_text())
    assert config["class_title_to_idx"] == {"cat": 0, "dog": 1}
    assert config["settings"]["variant"] == "detr_small" and (state / "model.pt").is_file()

    result = invoke("inspect", state, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["classes"] == ["cat", "dog"] and summary["parameters"] > 0

    tar = tmp_path / "model.tar"
    result = invoke("pack", state, "-o", tar)
    assert result.exit_code == 0, result.output
    with tarfile.open(tar) as archive:  # uncompressed, files at the top level
        assert sorted(archive.getnames()) == ["config.json", "model.pt"]
    assert tar.read_bytes()[257:262] == b"ustar"
    assert invoke("inspect", tar).exit_code == 0


def test_import_refuses_weights_that_do_not_fit(weights, tmp_path):
    result = invoke("import", weights, "--model", "detr", "--variant", "detr_small", "--classes", "a,b,c",
                    "-o", tmp_path / "bad")
    assert result.exit_code != 0
    assert isinstance(result.exception, TrainingError) and "do not fit detr_small with 3 classes" in str(
        result.exception)
    assert not (tmp_path / "bad").exists()


def test_inspect_names_a_broken_config(weights, tmp_path):
    state = tmp_path / "state"
    assert invoke("import", weights, "--model", "detr", "--variant", "detr_small", "--classes", "cat,dog",
                  "-o", state).exit_code == 0
    config = json.loads((state / "config.json").read_text())
    del config["settings"]["variant"]
    (state / "config.json").write_text(json.dumps(config))
    result = invoke("inspect", state)
    assert "settings.variant is missing" in str(result.exception)
