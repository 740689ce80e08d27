"""RT-DETRv2 and D-FINE (tiny variants) end to end on CPU: loss, events, checkpoints, resume, ONNX, predict, no-object batches."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cvatflow import events
from training_fixtures import make_dataset

pytestmark = pytest.mark.slow

HP = "max_steps: 12\nbatch_size: 4\nimage_size: 96\nval_every: 2\nnum_workers: 0\nwarmup_steps: 2\n"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("rtdetr") / "data", images=12, seed=5, size=96)


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "cvatflow.training.cli", "rtdetr", *args], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return list(events.parse_lines(proc.stdout.splitlines())), proc.stdout


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    output = tmp_path_factory.mktemp("rtdetr") / "out"
    evs, _ = run_cli("train", "--data", str(dataset), "--output", str(output), "--model", "rtdetr_v2_tiny",
                     "--hyperparameters", HP)
    return output, evs


def train_losses(evs):
    return [e["metrics"]["loss"] for e in evs if e["event_type"] == events.METRICS and e["type"] == "train"]


def test_loss_falls_events_checkpoints_and_model_state(run):
    output, evs = run
    losses = train_losses(evs)
    assert min(losses[-2:]) < losses[0]
    val = [e for e in evs if e["event_type"] == events.METRICS and e["type"] == "val"]
    assert {"mAP", "AP50", "AP75", "precision", "recall", "f1"} <= set(val[-1]["metrics"])
    assert any(e["event_type"] == events.CHECKPOINT for e in evs)
    config = json.loads((output / "model/config.json").read_text())
    assert config["settings"]["model"] == "rtdetr" and config["settings"]["variant"] == "rtdetr_v2_tiny"
    assert config["settings"]["hf_config"]["num_queries"] == 50  # rebuildable offline
    assert [c["shape"] for c in config["out_classes"]] == ["rectangle"] * 3
    for name in ("export/best.onnx", "checkpoints/best.pt", "checkpoints/last.pt", "model_meta.json"):
        assert (output / name).is_file(), name
    info = json.loads((output / "experiment_info.json").read_text())
    assert info["framework_name"] == "transformers" and info["model_name"] == "rtdetr_v2_tiny"


def assert_same_detections(got, expected, score_atol=1e-4, box_atol=1e-2):
    """ONNX detections equal torch's: scores elementwise (both sorted), and every detection's label and box
    (xyxy pixels) equal to one of torch's with the same score. Queries whose scores tie within float rounding may
    come out in either order (torch.topk and onnxruntime's TopK break ties differently), nothing else may differ."""
    boxes, scores, labels = got
    want_boxes, want_scores, want_labels = expected
    np.testing.assert_allclose(scores, want_scores, atol=score_atol)
    for box, score, label in zip(boxes, scores, labels):
        same = (np.abs(want_scores - score) <= score_atol) & (want_labels == label) & \
            (np.abs(want_boxes - box).max(-1) <= box_atol)
        assert same.any(), f"ONNX detection {label} {score:.6f} {box} is not among torch's"


def test_onnx_matches_torch(run):
    import torch

    from cvatflow.training.export import run_onnx
    from cvatflow.training.predict import load_model

    output, _ = run
    adapter, model, _ = load_model("rtdetr", output, "cpu")
    module, _, _ = adapter.export_module(model, 96)
    image = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = [t.numpy() for t in module(image)]
    assert_same_detections(run_onnx(output / "export/best.onnx", image), expected, score_atol=1e-4)


@pytest.mark.parametrize("variant", ["rtdetr_v2_tiny", "dfine_tiny"])
def test_onnx_export_of_distinct_queries_matches_torch(variant, tmp_path):
    """A fresh model whose box heads are perturbed (so boxes depend on the image, not only on the anchors)."""
    import torch

    from cvatflow.training.export import export_onnx, run_onnx

    adapter, model = _tiny(variant)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "bbox_embed" in name or "enc_bbox_head" in name:
                param.add_(torch.randn_like(param) * 0.05)
    path = export_onnx(adapter, model, tmp_path / "m.onnx", 64)
    module, _, _ = adapter.export_module(model.eval(), 64)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = [t.numpy() for t in module(image)]
    assert np.unique(expected[1].round(5)).size > len(expected[1]) // 2  # the queries score differently
    assert_same_detections(run_onnx(path, image), expected)


def test_predict_output_imports_with_cvats_coco_importer(run, dataset, tmp_path):
    import datumaro as dm

    output, _ = run
    evs, _ = run_cli("predict", "--model", str(output), "--data", str(dataset), "--output", str(tmp_path / "pred"),
                     "--threshold", "0.0")
    assert evs[-1]["subtask"] == "predict" and evs[-1]["current"] == evs[-1]["total"] == 12
    coco = json.loads((tmp_path / "pred/annotations/instances_default.json").read_text())
    assert coco["annotations"] and [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle"]
    # CVAT's COCO 1.0 annotation import: the uploaded zip (annotations/ only) extracted, then datumaro's importer
    upload = tmp_path / "upload"
    (upload / "annotations").mkdir(parents=True)
    (upload / "images").mkdir()  # datumaro wants the folder, not the images
    shutil.copy(tmp_path / "pred/annotations/instances_default.json", upload / "annotations")
    imported = dm.Dataset.import_from(str(upload), "coco_instances")
    assert sum(len(item.annotations) for item in imported) == len(coco["annotations"])
    assert all(ann.type == dm.AnnotationType.bbox for item in imported for ann in item.annotations)


def test_dfine_trains_resumes_and_fine_tunes(dataset, tmp_path):
    output = tmp_path / "dfine"
    hp = HP.replace("max_steps: 12", "max_steps: 6").replace("val_every: 2", "val_every: 1")
    args = ["train", "--data", str(dataset), "--output", str(output), "--model", "dfine_tiny", "--no-export"]
    evs, _ = run_cli(*args, "--hyperparameters", hp)
    assert [e["current"] for e in evs if e["event_type"] == events.PROGRESS] == list(range(1, 7))
    losses = train_losses(evs)
    assert min(losses[-2:]) < losses[0]
    # a longer schedule over the same output continues from checkpoints/last.pt
    evs, out = run_cli(*args, "--hyperparameters", hp.replace("max_steps: 6", "max_steps: 8"))
    assert "resuming from checkpoints/last.pt at step 6" in out
    assert [e["current"] for e in evs if e["event_type"] == events.PROGRESS] == [7, 8]
    # continue_training keeps every weight; transfer_learning re-initialises the class heads
    one = "max_steps: 1\nbatch_size: 4\nimage_size: 96\nnum_workers: 0\n"
    _, out = run_cli("train", "--data", str(dataset), "--output", str(tmp_path / "cont"), "--models", str(output),
                     "--no-export", "--hyperparameters", one + "weights_init_type: continue_training\n")
    assert "continue training from" in out
    _, out = run_cli("train", "--data", str(dataset), "--output", str(tmp_path / "tl"), "--models", str(output),
                     "--no-export", "--hyperparameters", one)
    heads = int(out.split("transfer learning from ")[1].split("(")[1].split()[0])
    assert heads >= 3  # decoder class heads, query-selection head, denoising label embedding


def _tiny(variant):
    import torch

    from cvatflow.models import get_adapter

    torch.manual_seed(0)
    adapter = get_adapter("rtdetr")
    model = adapter.build(adapter.settings(variant, 64), 3, pretrained=False)
    return adapter, model.train()


def _targets(counts):
    import torch

    return [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]] * n).reshape(n, 4),
             "labels": torch.zeros(n, dtype=torch.long)} for n in counts]


@pytest.mark.parametrize("variant", ["rtdetr_v2_tiny", "dfine_tiny"])
def test_batches_without_objects_train_with_the_same_graph(variant):
    """No objects in a batch: finite loss, and the same parameters get gradients as with objects (DDP needs that)."""
    import torch

    adapter, model = _tiny(variant)
    images = [torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(2)]
    graphs = []
    for counts in ([2, 1], [0, 1], [0, 0]):
        model.zero_grad(set_to_none=True)
        loss = adapter.losses(model, images, _targets(counts), torch.device("cpu"))["sum"]
        assert torch.isfinite(loss)
        loss.backward()
        graphs.append({n for n, p in model.named_parameters() if p.grad is not None})
    assert graphs[0] == graphs[1] == graphs[2]


def test_bf16_autocast_step_is_finite():
    import torch

    adapter, model = _tiny("rtdetr_v2_tiny")
    images = [torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = adapter.losses(model, images, _targets([1, 2]), torch.device("cpu"))
    losses["sum"].backward()
    assert torch.isfinite(losses["sum"]) and set(losses) >= {"loss_vfl", "loss_bbox", "loss_giou", "sum"}


def test_every_variant_builds_offline_and_the_template_offers_them():
    from cvatflow.models import get_adapter, variants
    from cvatflow.models.rtdetr_variants import BY_NAME, offline_config
    from cvatflow.templates import get_template

    adapter = get_adapter("rtdetr")
    for name in variants("rtdetr"):
        config = offline_config(name, 3)
        assert config.num_labels == 3, name
        defaults = adapter.default_hyperparameters(name)
        assert defaults["optimizer"] == "adamw" and defaults["epochs"] >= 1, name
    assert {BY_NAME[n].family for n in variants("rtdetr")} == {"rtdetr_v2", "dfine"}
    model = next(p for p in get_template("rtdetr-training").parameters if p.name == "cvat-model")
    assert [o.value for o in model.options if BY_NAME[o.value].hub] == [n for n in variants("rtdetr")
                                                                        if BY_NAME[n].hub]
    assert model.value == adapter.default_variant == "rtdetr_v2_r18vd"
    assert "48.1 COCO AP" in model.options[0].name


@pytest.mark.parametrize("variant", ["rtdetr_v2_tiny", "dfine_tiny"])
def test_fresh_model_is_not_dead(variant):
    """Built from scratch with the reference repositories' init, the encoder's query scores differ per position
    (transformers' N(0, 0.01) init leaves them equal to ~1e-7, so top-k order was arbitrary and training slow)."""
    import torch

    _, model = _tiny(variant)
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model.eval().model(pixel_values=image)
    assert out.enc_outputs_class.std(dim=1).min() > 1e-2
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(bool((m.weight == 1).all()) for m in norms)


def test_queries_grow_to_the_densest_image_within_the_encoders_cells():
    from cvatflow.models import get_adapter
    from cvatflow.models.rtdetr import query_candidates

    adapter = get_adapter("rtdetr")
    settings = adapter.settings("rtdetr_v2_tiny", 128)
    assert adapter.fit_capacity(settings, 30) == [] and "num_queries" in settings  # 50 queries suffice
    lines = adapter.fit_capacity(settings, 150)
    assert settings["num_queries"] == 188 and lines == [
        ("num_queries 50 -> 188: the data has up to 150 objects on one image and RT-DETR/D-FINE give one "
        "detection per query")]
    model = adapter.build(settings, 3, pretrained=False)
    assert model.config.num_queries == settings["hf_config"]["num_queries"] == 188
    # 64 px: 8x8 + 4x4 + 2x2 cells, top-k cannot pick more; said, not silently capped
    small = adapter.settings("dfine_tiny", 64)
    lines = adapter.fit_capacity(small, 150)
    assert query_candidates("dfine_tiny", 64) == 84 and small["num_queries"] == 84
    assert "raise image_size" in lines[-1]
    assert adapter.min_object_size("rtdetr_v2_r18vd") == 4.0 and adapter.min_object_size("dfine_n") == 8.0


@pytest.mark.parametrize("variant", ["rtdetr_v2_tiny", "dfine_tiny"])
def test_more_queries_train_and_predict_one_detection_per_query(variant):
    import torch

    from cvatflow.models import get_adapter

    adapter = get_adapter("rtdetr")
    settings = adapter.settings(variant, 64)
    adapter.fit_capacity(settings, 60)
    model = adapter.build(settings, 3, pretrained=False).train()
    images = [torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(2)]
    adapter.losses(model, images, _targets([60, 1]), torch.device("cpu"))["sum"].backward()
    with torch.no_grad():
        out = adapter.predict(model.eval(), images, torch.device("cpu"))
    assert len(out[0]["scores"]) == settings["num_queries"] == 75


def test_learned_initial_queries_grow_keeping_the_checkpoints():
    import torch

    from cvatflow.models import get_adapter
    from cvatflow.models.rtdetr import QUERY_KEY

    adapter = get_adapter("rtdetr")
    settings = adapter.settings("rtdetr_v2_tiny", 64)
    settings["hf_config"] = {**adapter.build(dict(settings), 3, False).config.to_dict(), "learn_initial_query": True}
    small = adapter.build(dict(settings), 3, False)
    weights = small.state_dict()
    big = adapter.build({**settings, "num_queries": 70}, 3, False)
    lines = adapter.adapt_weights(weights, big)
    assert lines == ["the checkpoint has 50 learned initial queries, this model 70: 50 kept, 20 re-initialised"]
    big.load_state_dict(weights)
    assert torch.equal(big.state_dict()[QUERY_KEY][:50], small.state_dict()[QUERY_KEY])
    assert adapter.adapt_weights(big.state_dict(), big) == []


def test_ema_follows_the_weights_with_the_reference_ramp():
    import math

    import torch

    from cvatflow.training.ema import ModelEma

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = ModelEma(model, decay=0.9, warmups=10)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked += 5
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1 / 10))
    assert torch.allclose(ema.module[0].weight, d * start + (1 - d) * model[0].weight)
    assert int(ema.module[1].num_batches_tracked) == 5  # integers copied, not averaged
    assert not any(p.requires_grad for p in ema.module.parameters())
    copy = ModelEma(model, 0.9, 10)
    copy.load_state_dict(ema.state_dict())
    assert copy.updates == 1 and torch.equal(copy.module[0].weight, ema.module[0].weight)


def test_ema_weights_are_validated_kept_and_resumed(dataset, tmp_path):
    import torch

    output = tmp_path / "ema"
    hp = ("max_steps: 4\nbatch_size: 4\nimage_size: 64\nval_every: 1\nnum_workers: 0\nwarmup_steps: 1\n"
          "ema_decay: 0.9\nema_warmup_steps: 2\n")
    args = ["train", "--data", str(dataset), "--output", str(output), "--model", "rtdetr_v2_tiny", "--no-export"]
    run_cli(*args, "--hyperparameters", hp)
    last = torch.load(output / "checkpoints/last.pt", weights_only=False)
    numbered = torch.load(output / "checkpoints/step_00000004.pt", weights_only=False)
    assert last["ema"]["updates"] == 4
    key = "model.enc_score_head.weight"
    averaged = last["ema"]["module"]
    assert not torch.equal(averaged[key], last["model"][key])  # the average is not the raw weights
    assert torch.equal(numbered["model"][key], averaged[key])  # what was validated is what is kept
    _, out = run_cli(*args, "--hyperparameters", hp.replace("max_steps: 4", "max_steps: 5"))
    assert "resuming from checkpoints/last.pt at step 4" in out
    assert torch.load(output / "checkpoints/last.pt", weights_only=False)["ema"]["updates"] == 5
