"""Mask R-CNN end to end on CPU: a tiny run trains, reports, checkpoints, exports, predicts and fine-tunes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cvatflow import events
from cvatflow.errors import TrainingError
from training_fixtures import make_dataset

pytestmark = pytest.mark.slow

HP = "max_steps: 10\nbatch_size: 2\nimage_size: 96\nval_every: 2.5\nnum_workers: 0\nwarmup_steps: 2\nlr: 0.002\n"


def run_cli(args):
    """Run `cvatflow-train` in-process; the events it printed on stdout (parsed) and the whole stdout."""
    import contextlib
    import io

    from cvatflow.training.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            main(args)
        except SystemExit as exc:
            assert exc.code in (0, None)
    out = buffer.getvalue()
    return list(events.parse_lines(out.splitlines())), out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("mrcnn") / "data", images=10, seed=2, size=96)


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    """One short training shared by the tests below (module scope: capsys is per test, so redirect by hand)."""
    output = tmp_path_factory.mktemp("mrcnn") / "out"
    evs, _ = run_cli(["maskrcnn", "train", "--data", str(dataset), "--output", str(output), "--model",
                      "maskrcnn_mobilenet_v3", "--hyperparameters", HP, "--num-classes", "3"])
    return output, evs


def test_loss_goes_down_and_events_parse(run):
    _, evs = run
    train = [e for e in evs if e["event_type"] == events.METRICS and e["type"] == "train"]
    val = [e for e in evs if e["event_type"] == events.METRICS and e["type"] == "val"]
    progress = [e for e in evs if e["event_type"] == events.PROGRESS and e["subtask"] == "train"]
    assert train[-1]["metrics"]["loss"] < train[0]["metrics"]["loss"]
    assert {"mAP", "AP50", "AP75", "segm_mAP"} <= set(val[-1]["metrics"])
    assert [p["current"] for p in progress] == list(range(1, 11)) and progress[-1]["total"] == 10
    summary = events.summarize(evs)
    assert summary.progress == 1.0 and summary.best_map is not None


def test_outputs_and_checkpoints(run):
    output, evs = run
    checkpoints = [e for e in evs if e["event_type"] == events.CHECKPOINT]
    assert checkpoints and checkpoints[0]["best_now"] is True
    for event in checkpoints[-2:]:
        assert (output / event["subdir"]).is_file() and event["sizeb"] > 0
    for name in ("checkpoints/best.pt", "checkpoints/last.pt", "model/config.json", "model/model.pt",
                 "report/metrics.json", "report/loss.png", "report/map.png", "experiment_info.json",
                 "model_meta.json", "hyperparameters.yaml", "train_val_split.json", "export/best.onnx"):
        assert (output / name).is_file(), name
    assert list((output / "tensorboard").iterdir())
    config = json.loads((output / "model/config.json").read_text())
    assert config["class_title_to_idx"] == {"circle": 0, "square": 1, "triangle": 2}
    assert [c["shape"] for c in config["out_classes"]] == ["bitmap"] * 3
    assert config["settings"]["variant"] == "maskrcnn_mobilenet_v3"
    info = json.loads((output / "experiment_info.json").read_text())
    assert info["steps"] == 10 and info["task_type"] == "instance segmentation"
    report = json.loads((output / info["dataset_report"]).read_text())  # what of the annotations trained
    assert info["dataset"]["summary"] == report["summary"] and report["objects"]["usable"] > 0
    assert info["dataset"]["objects"] == report["objects"]
    assert "mAP" in json.loads((output / "report/metrics.json").read_text())


def test_onnx_matches_torch(run, tmp_path):
    import torch

    from cvatflow.training.export import export_onnx, run_onnx
    from cvatflow.training.predict import load_model

    output, _ = run
    adapter, model, _ = load_model("maskrcnn", output, "cpu")
    model.roi_heads.score_thresh = 0.0  # keep detections even from a barely trained model
    path = export_onnx(adapter, model, tmp_path / "m.onnx", 96)
    module, _, _ = adapter.export_module(model, 96)
    image = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = [t.numpy() for t in module(image)]
    got = run_onnx(path, image)
    assert len(expected[1]) > 0
    assert got[0].shape == expected[0].shape
    np.testing.assert_allclose(got[0], expected[0], atol=1e-3)
    np.testing.assert_allclose(got[1], expected[1], atol=1e-4)
    np.testing.assert_array_equal(got[2], expected[2])
    assert np.mean(got[3] > 0.5) == pytest.approx(np.mean(expected[3] > 0.5), abs=1e-3)


def test_predict_writes_results_cvat_imports(run, dataset, tmp_path):
    output, _ = run
    evs, _ = run_cli(["maskrcnn", "predict", "--model", str(output), "--data", str(dataset), "--output",
                    str(tmp_path / "pred"), "--threshold", "0.0"])
    assert evs[-1]["subtask"] == "predict" and evs[-1]["current"] == evs[-1]["total"] == 10
    results = json.loads((tmp_path / "pred/predictions.json").read_text())
    coco = json.loads((tmp_path / "pred/annotations/instances_default.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle"]
    assert len(coco["images"]) == 10 and len(coco["annotations"]) == len(results)
    if results:
        ann = coco["annotations"][0]
        assert ann["iscrowd"] == 1 and set(ann["segmentation"]) == {"size", "counts"}


def test_fine_tune_and_class_mismatch(run, dataset, tmp_path):
    output, _ = run
    _, out = run_cli(["maskrcnn", "train", "--data", str(dataset), "--output", str(tmp_path / "ft"), "--models",
                      str(output), "--hyperparameters", HP.replace("max_steps: 10", "max_steps: 2") +
                      "weights_init_type: continue_training\n", "--no-export"])
    assert "continue training from" in out and (tmp_path / "ft/model/model.pt").is_file()
    coco_path = dataset / "annotations/instances_default.json"
    other = tmp_path / "other"
    import shutil

    shutil.copytree(dataset, other)
    coco = json.loads(coco_path.read_text())
    coco["categories"][0]["name"] = "disc"
    (other / "annotations/instances_default.json").write_text(json.dumps(coco))
    from cvatflow.training.loop import Run, Setup

    with pytest.raises(TrainingError, match="continue_training.*circle.*disc.*transfer_learning"):
        Setup(Run(model="maskrcnn", data=other, output=tmp_path / "x", models=output,
                  hyperparameters="weights_init_type: continue_training"))
    # transfer learning to the new classes is fine
    Setup(Run(model="maskrcnn", data=other, output=tmp_path / "x", models=output))


def test_bad_inputs_fail_before_training(dataset, tmp_path, capsys):
    from cvatflow.training.cli import main

    cases = [
        (["--hyperparameters", "epochs: 0"], "epochs must be at least 1"),
        (["--num-classes", "5"], "--num-classes 5: the dataset has 3 categories"),
        (["--model", "maskrcnn_vit"], "not a maskrcnn variant"),
        (["--models", str(tmp_path / "none")], "does not exist (pass a model state folder"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit) as info:
            main(["maskrcnn", "train", "--data", str(dataset), "--output", str(tmp_path / "o")] + extra)
        assert info.value.code == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert not (tmp_path / "o" / "checkpoints").exists()
