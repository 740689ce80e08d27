"""Interactive segmentation: click simulation and NoC/mIoU on hand-made masks, and a tiny model through the harness."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cvatflow.models import interactive_clicks as ic


def _square(h=20, w=20, x0=5, y0=5, x1=15, y1=15):
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_first_click_is_the_interior_most_object_pixel():
    gt = _square()
    # a 10-pixel run has its farthest-from-edge pixels at offsets 4 and 5; the first in scan order wins
    assert ic.next_click(np.zeros_like(gt), gt) == (9.5, 9.5, True)
    assert ic.next_click(gt, gt) is None


def test_next_click_goes_to_the_largest_error_negative_when_false_positive():
    gt = _square(x0=0, y0=0, x1=4, y1=4)
    pred = gt.copy()
    pred[10:20, 10:20] = True  # 100 false-positive pixels
    gt2 = gt.copy()
    gt2[0:2, 18:20] = True  # 4 missed pixels
    x, y, positive = ic.next_click(pred, gt2)
    assert not positive and 10 <= x < 20 and 10 <= y < 20


def test_click_ious_and_noc_with_a_scripted_predictor():
    gt = _square()
    half = gt.copy()
    half[:, 10:] = False  # IoU 0.5
    most = gt.copy()
    most[5, 5:15] = False  # 90 of 100: IoU 0.9

    def predict(clicks):
        return {1: half, 2: most}.get(len(clicks), gt)

    ious = ic.click_ious(predict, gt, max_clicks=5)
    assert ious == [0.5, 0.9, 1.0, 1.0, 1.0]
    assert ic.noc(ious, 0.85) == 2 and ic.noc(ious, 0.9) == 2 and ic.noc(ious, 0.95) == 3
    assert ic.noc([0.1, 0.2], 0.9, max_clicks=20) == 20


def test_summary_metrics_exact():
    curves = [[0.5, 0.86, 0.95], [0.9, 0.9, 0.9], [0.1, 0.2, 0.3]]
    m = ic.summarize(curves, max_clicks=3)
    assert m["NoC@85"] == pytest.approx((2 + 1 + 3) / 3)
    assert m["NoC@90"] == pytest.approx((3 + 1 + 3) / 3)
    assert m["mIoU@1"] == pytest.approx(0.5)
    assert m["mIoU@3"] == pytest.approx((0.95 + 0.9 + 0.3) / 3)
    assert m["mIoU@5"] == m["mIoU@3"]  # curves shorter than 5 clicks: their last value
    assert m["NoF@90"] == 1 and m["objects"] == 3


def test_click_maps_are_disks():
    maps = ic.click_maps([(5.5, 5.5, True), (15.5, 2.5, False)], 20, 20, radius=2)
    assert maps.shape == (2, 20, 20) and maps.dtype == np.float32
    assert maps[0].sum() == 13 and maps[1].sum() == 13  # pixel centres within 2 px: the 13-pixel disk
    assert maps[0, 5, 5] == 1 and maps[0, 5, 8] == 0 and maps[1, 2, 15] == 1


def test_baseline_grows_a_uniform_object_from_one_click():
    image = np.full((20, 20, 3), 120, np.uint8)
    gt = _square()
    image[gt] = (230, 40, 40)
    assert ic.iou(ic.grow_from_clicks(image, [(9.5, 9.5, True)]), gt) == 1.0
    assert not ic.grow_from_clicks(image, [(9.5, 9.5, True), (9.5, 9.5, False)]).any()


def _dataset(root, n=6, size=32):
    """Samples with one red square each on noise, tagged train/val, in the COCO layout transform writes."""
    from cvatflow.datasets import transform as tf

    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        image = rng.integers(60, 140, (size, size, 3), dtype=np.uint8)
        x0, y0 = int(rng.integers(0, size // 2)), int(rng.integers(0, size // 2))
        mask = _square(size, size, x0, y0, x0 + size // 3, y0 + size // 3)
        image[mask] = (230, 40, 40)
        samples.append(tf.Sample(f"s{i}", image, [{"category": "obj", "mask": mask}], ["val" if i < 2 else "train"]))
    tf.write_samples(samples, root)
    return root


def test_tiny_model_trains_resumes_and_reports_click_metrics(tmp_path, monkeypatch):
    from cvatflow.models import interactive
    from cvatflow.training.loop import Run, train

    monkeypatch.setattr(interactive, "MAX_CLICKS", 3)  # keeps validation to a few forward passes
    monkeypatch.setattr(interactive, "TINY_VAL_OBJECTS", 2)
    data = _dataset(tmp_path / "data")
    hp = "{image_size: 32, num_workers: 0, batch_size: 2, max_steps: 2, val_every: 100}"
    run = Run(model="interactive", data=data, output=tmp_path / "out", variant="click_tiny", hyperparameters=hp,
              pretrained=False, device="cpu", export=True)
    first = train(run)
    assert set(first) >= {"NoC@85", "NoC@90", "mIoU@1", "mIoU@3", "mIoU@5"}
    assert 1 <= first["NoC@90"] <= 3 and first["objects"] == 2
    out = tmp_path / "out"
    info = json.loads((out / "experiment_info.json").read_text())
    assert info["primary_metric"] == "NoC@90" and info["steps"] == 2
    assert json.loads((out / "model_meta.json").read_text())["classes"][0]["title"] == "obj"
    assert (out / "export" / "best.onnx").is_file() and (out / "checkpoints" / "last.pt").is_file()
    # resume: the same output with more steps continues from last.pt
    again = Run(**{**run.__dict__, "hyperparameters": hp.replace("max_steps: 2", "max_steps: 3")})
    train(again)
    info = json.loads((out / "experiment_info.json").read_text())
    assert info["steps"] == 3
    val = [h for h in json.loads((out / "report" / "metrics.json").read_text())["history"] if h["type"] == "val"]
    assert [h["step"] for h in val] == [2, 3]


def test_onnx_export_matches_torch(tmp_path):
    import torch

    from cvatflow.models.interactive import InteractiveAdapter, model_input
    from cvatflow.training.export import export_onnx, run_onnx

    adapter = InteractiveAdapter()
    model = adapter.build(adapter.settings("click_tiny", 32), 1, False).eval()
    path = export_onnx(adapter, model, tmp_path / "m.onnx", 32)
    x = model_input(np.zeros((24, 40, 3), np.uint8), [(10.5, 10.5, True)])[None]
    [onnx_mask] = run_onnx(path, x)
    with torch.no_grad():
        expected = torch.sigmoid(model(x)).numpy()
    assert onnx_mask.shape == (1, 1, 24, 40)
    assert np.allclose(onnx_mask, expected, atol=1e-4)


def test_the_lraspp_variant_takes_click_maps_and_trains_a_step():
    """The default (GPU) variant: torchvision's LR-ASPP MobileNetV3 with two click channels that start at zero."""
    import torch

    from cvatflow.models.interactive import InteractiveAdapter

    adapter = InteractiveAdapter()
    torch.manual_seed(0)
    model = adapter.build(adapter.settings("click_lraspp_mobilenet_v3", 64), 1, False)
    first = model.inner.backbone["0"][0]
    assert first.in_channels == 5 and not first.weight[:, 3:].any() and first.weight[:, :3].any()
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 5, 64, 80)).shape == (1, 1, 64, 80)
    model.train()
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 16:48, 20:40] = 1
    target = {"masks": masks, "boxes": torch.tensor([[20.0, 16.0, 40.0, 48.0]]), "labels": torch.tensor([1])}
    losses = adapter.losses(model, [torch.rand(3, 64, 64)], [target], torch.device("cpu"))
    losses["sum"].backward()
    assert torch.isfinite(losses["sum"]) and first.weight.grad[:, 3:].abs().sum() > 0  # the clicks are learned
