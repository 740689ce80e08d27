"""The split and the model fit the data: stratified split, capacity follows density, small objects are counted."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from cvatflow.datasets import stats
from cvatflow.datasets.stratify import stratified, untrained_classes
from cvatflow.errors import TrainingError


def _coco(classes_per_image: list[list[int]], categories: int) -> dict:
    """One 100x100 image per entry, one 10x10 box per listed category id."""
    images = [{"id": i + 1, "width": 100, "height": 100, "file_name": f"{i + 1}.png"}
              for i in range(len(classes_per_image))]
    anns = [{"id": len(images) * 10 + k, "image_id": i + 1, "category_id": c, "bbox": [k * 10, 0, 10, 10],
             "area": 100, "iscrowd": 0}
            for i, cats in enumerate(classes_per_image) for k, c in enumerate(cats)]
    return {"images": images, "annotations": anns,
            "categories": [{"id": c, "name": f"c{c}"} for c in range(1, categories + 1)]}


# twelve images: class 1 everywhere, class 2 on image 5 only, class 3 on images 2 and 9 (the case)
TWELVE = _coco([[1] + ([2] if i == 5 else []) + ([3] if i in (2, 9) else []) for i in range(1, 13)], 3)


def test_a_one_image_class_is_always_trained_on_and_a_two_image_class_is_in_both():
    for seed in range(50):
        train, val = stratified(TWELVE, 25, seed)
        assert 5 in train, seed
        assert (2 in train) != (9 in train), (seed, train, val)  # one in each
        assert len(val) == 3 and sorted(train + val) == list(range(1, 13))


def _covered(coco: dict, train: list, val: list) -> bool:
    """Every class on one image is in train; every class on two or more images is in both."""
    counts = stats.class_counts(coco, {"train": train, "val": val})
    return all(c["train"]["images"] and (c["val"]["images"] or c["train"]["images"] < 2) for c in counts.values())


def test_the_repair_covers_classes_the_greedy_pass_could_not():
    # val has room for one image: the first class takes it, the second needs the repair to get a val image
    coco = {"images": [{"id": i} for i in range(4)], "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            "annotations": [{"image_id": i, "category_id": 1 if i < 2 else 2} for i in range(4)]}
    for seed in range(10):
        train, val = stratified(coco, 25, seed)
        assert _covered(coco, train, val), (seed, train, val)
    # multi-label, val of one image: the repair moves an image in, and a swap brings val back to one image
    labels = {0: [10, 12], 1: [11, 12], 2: [11, 12], 3: [], 4: [11]}
    coco = {"images": [{"id": i} for i in labels], "categories": [{"id": c, "name": str(c)} for c in (10, 11, 12)],
            "annotations": [{"image_id": i, "category_id": c} for i, cats in labels.items() for c in cats]}
    train, val = stratified(coco, 20, 0)
    assert len(val) == 1 and _covered(coco, train, val), (train, val)


def test_the_split_is_seeded_and_keeps_class_shares():
    assert stratified(TWELVE, 25, 7) == stratified(TWELVE, 25, 7)
    assert len({tuple(stratified(TWELVE, 25, seed)[1]) for seed in range(10)}) > 3
    # multi-label, 200 images, 4 classes of different frequency: each class's val share is near 20%
    rng = np.random.default_rng(0)
    coco = _coco([[c for c, p in zip(range(1, 5), (0.9, 0.5, 0.2, 0.05)) if rng.random() < p] for _ in range(200)], 4)
    train, val = stratified(coco, 20, 0)
    counts = stats.class_counts(coco, {"train": train, "val": val})
    for name, count in counts.items():
        total = count["train"]["images"] + count["val"]["images"]
        assert abs(count["val"]["images"] - 0.2 * total) <= 1.5, (name, count)
    assert len(val) == 40


def test_class_counts_per_split_and_untrained_classes():
    coco = _coco([[1, 1, 2], [1], [2, 2]], 3)
    counts = stats.class_counts(coco, {"train": [1, 2], "val": [3]})
    assert counts == {"c1": {"train": {"objects": 3, "images": 2}, "val": {"objects": 0, "images": 0}},
                      "c2": {"train": {"objects": 1, "images": 1}, "val": {"objects": 2, "images": 1}},
                      "c3": {"train": {"objects": 0, "images": 0}, "val": {"objects": 0, "images": 0}}}
    assert untrained_classes(coco, [2]) == ["c2"] and untrained_classes(coco, [1]) == []  # c3: unused, not starved


def test_objects_per_image_max_and_p99():
    counts = [0, 1, 2, 3, 150] + [5] * 95
    coco = _coco([[1] * n for n in counts], 1)
    density = stats.objects_per_image(coco)
    assert density["max"] == 150 and density["images"] == 100
    assert density["p99"] == pytest.approx(float(np.percentile(counts, 99)), abs=0.01)
    assert stats.capacity(150, 100) >= 150 and stats.capacity(10, 100) == 100


def test_small_objects_match_a_hand_computed_case():
    coco = {"images": [{"id": 1, "width": 1000, "height": 500}, {"id": 2, "width": 100, "height": 200}],
            "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "pole"}],
            "annotations": [
                # image 1 shrinks by 500/1000 = 0.5
                {"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20]},    # 20 * 0.5 = 10 px: small
                {"image_id": 1, "category_id": 1, "bbox": [0, 0, 32, 32]},    # 16 px: not under 16
                {"image_id": 1, "category_id": 1, "bbox": [0, 0, 30, 40]},    # sqrt(1200) * 0.5 = 17.3 px
                {"image_id": 1, "category_id": 2, "bbox": [0, 0, 10, 100]},   # sqrt(1000) * 0.5 = 15.8 px: small
                {"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "iscrowd": 1},  # crowd: not counted
                # image 2 grows by 500/200 = 2.5
                {"image_id": 2, "category_id": 1, "bbox": [0, 0, 6, 6]},      # 15 px: small
                {"image_id": 2, "category_id": 1, "bbox": [0, 0, 7, 7]},      # 17.5 px
            ]}
    result = stats.small_objects(coco, image_size=500, min_size=16)
    assert (result["small"], result["objects"]) == (3, 6)
    assert result["per_class"] == {"cell": 2, "pole": 1}
    message = stats.small_objects_message(result, "detr_resnet50")
    assert "3 of 6 objects" in message and "image_size" in message and "tile" in message
    assert stats.small_objects_message(stats.small_objects(coco, 2000, 16), "x") is None


# -- evaluation counts every object of a dense image --------------------------------------------------------

def _dense_gt(objects: int = 150) -> dict:
    boxes = [[(k % 15) * 20.0, (k // 15) * 20.0, 16.0, 16.0] for k in range(objects)]
    return {"images": [{"id": 1, "width": 300, "height": 300}], "categories": [{"id": 1, "name": "cell"}],
            "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, "bbox": b, "area": 256.0, "iscrowd": 0}
                            for k, b in enumerate(boxes)]}


def test_evaluation_on_a_150_object_image_counts_all_of_them():
    from cvatflow.training.evaluation import evaluate

    gt = _dense_gt()
    perfect = [{"image_id": 1, "category_id": 1, "bbox": a["bbox"], "score": 1 - k / 1000}
               for k, a in enumerate(gt["annotations"])]
    dense = evaluate(gt, perfect, "bbox", max_dets=stats.capacity(150, 100))
    assert dense["mAP"] == pytest.approx(1.0) and dense["AR_max"] == pytest.approx(1.0)
    assert dense["per_class"]["cell"]["AP"] == pytest.approx(1.0) and dense["recall"] == pytest.approx(1.0)
    # COCO's standard 100 (beside it, and what the default gives) sees two thirds of the objects
    assert dense["coco100"]["AR100"] == pytest.approx(100 / 150)
    assert dense["coco100"]["mAP"] < 0.7
    assert evaluate(gt, perfect)["mAP"] == pytest.approx(dense["coco100"]["mAP"])


def test_the_coco100_numbers_equal_a_standard_evaluation():
    from cvatflow.training.evaluation import STAT_NAMES, evaluate

    rng = np.random.default_rng(1)
    gt = _dense_gt(120)
    gt["images"].append({"id": 2, "width": 300, "height": 300})
    gt["annotations"] += [dict(a, id=a["id"] + 1000, image_id=2) for a in gt["annotations"][:40]]
    detections = [{"image_id": a["image_id"], "category_id": 1, "score": float(rng.random()),
                   "bbox": [v + float(rng.normal(0, 2)) for v in a["bbox"][:2]] + a["bbox"][2:]}
                  for a in gt["annotations"] for _ in range(2)]
    standard = evaluate(gt, detections)
    dense = evaluate(gt, detections, max_dets=300)
    for name in STAT_NAMES:
        assert dense["coco100"][name] == pytest.approx(standard[name], abs=1e-12), name
    assert dense["AR_max"] > standard["AR100"]


# -- training: the models get the capacity --------------------------------------------------------------------

def _write_dense_dataset(root: Path, objects: int = 150) -> Path:
    """Three 150x150 images: one with `objects` boxes, two with a few; one class."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cell"}]}
    rng = np.random.default_rng(0)
    for image_id, count in ((1, objects), (2, 3), (3, 4)):
        pixels = rng.integers(0, 60, (150, 150, 3), dtype=np.uint8)
        for k in range(count):
            x, y = (k % 15) * 10, (k // 15) * 10 + (k % 2)
            pixels[y:y + 8, x:x + 8] = 230
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": 1,
                                        "bbox": [x, y, 8, 8], "area": 64, "iscrowd": 0})
        Image.fromarray(pixels).save(root / "images" / f"{image_id}.png")
        coco["images"].append({"id": image_id, "width": 150, "height": 150, "file_name": f"{image_id}.png"})
    (root / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    return root


def _train(model: str, variant: str, data: Path, output: Path, models: Path | None = None):
    from cvatflow.training.loop import Run, Setup, Trainer

    hp = "max_steps: 1\nbatch_size: 2\nimage_size: 64\nnum_workers: 0\nwarmup_steps: 0\nval_percent: 34\n"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        trainer = Trainer(Setup(Run(model=model, data=data, output=output, models=models, hyperparameters=hp,
                                    variant=None if models else variant, export=False)))
        trainer.train()
    return trainer, buffer.getvalue()


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    return _write_dense_dataset(tmp_path_factory.mktemp("dense") / "data")


@pytest.mark.slow
def test_a_150_object_image_trains_detr_with_150_queries_and_finetunes_from_fewer(dense, tmp_path):
    trainer, out = _train("detr", "detr_small", dense, tmp_path / "dense")
    assert trainer.model.config.num_queries >= 150
    assert "num_queries 20 -> " in out
    config = json.loads((tmp_path / "dense/model/config.json").read_text())
    assert config["settings"]["detr_config"]["num_queries"] >= 150  # rebuilt the same offline
    info = json.loads((tmp_path / "dense/experiment_info.json").read_text())
    assert info["dataset_fit"]["objects_per_image"]["max"] == 150
    assert info["evaluation_metrics"]["max_dets"] >= 150 and "coco100" in info["evaluation_metrics"]
    assert info["dataset_fit"]["small_objects"]["small"] > 0  # 8 px boxes at 64/150 scale: 3.4 px
    assert "warning: " in out and "image_size" in out

    # a model state with detr_small's 20 queries fine-tuned on the dense data: queries grow, the learned ones stay
    from cvatflow.models import get_adapter
    from cvatflow.training import state as statelib

    adapter = get_adapter("detr")
    settings = adapter.settings("detr_small", 64)
    sparse = adapter.build(settings, 3, pretrained=False)
    learned = sparse.model.query_position_embeddings.weight.detach().clone()
    statelib.write_model_state(tmp_path / "s/model", statelib.model_config(settings, ["a", "b", "c"], "rectangle"),
                               sparse.state_dict())
    tuned, out = _train("detr", "detr_small", dense, tmp_path / "ft", models=tmp_path / "s")
    assert "the checkpoint has 20 object queries" in out and "re-initialised" in out
    assert tuned.model.config.num_queries >= 150
    rows = tuned.model.model.query_position_embeddings.weight.detach()
    # one AdamW step (lr 5e-4) from the checkpoint's 20 rows; the new rows are fresh
    assert float((rows[:20] - learned).abs().max()) < 1e-2
    assert float((rows[20:40] - learned).abs().max()) > 1e-2


def test_hub_detr_queries_grow_keeping_the_learned_ones():
    import torch
    from transformers import DetrForObjectDetection

    from cvatflow.models.detr import _config, _resize_queries

    model = DetrForObjectDetection(_config("detr_small", 2)).eval()  # what the hub model is, offline
    learned = model.model.query_position_embeddings.weight.detach().clone()
    assert _resize_queries(model, 190) == 20
    grown = model.model.query_position_embeddings.weight.detach()
    assert grown.shape == (190, learned.shape[1]) and torch.equal(grown[:20], learned)
    assert model.config.num_queries == 190
    with torch.no_grad():
        out = model(pixel_values=torch.rand(1, 3, 64, 64))
    assert out.logits.shape[1] == 190


@pytest.mark.slow
def test_a_150_object_image_trains_mask_rcnn_with_150_detections(dense, tmp_path):
    trainer, out = _train("maskrcnn", "maskrcnn_resnet18_fpn", dense, tmp_path / "out")
    heads = trainer.model.roi_heads
    assert heads.detections_per_img >= 150 and trainer.model.rpn._post_nms_top_n["testing"] >= 150
    assert "box_detections_per_img 100 -> " in out
    config = json.loads((tmp_path / "out/model/config.json").read_text())
    assert config["settings"]["box_detections_per_img"] >= 150


def test_a_class_with_no_training_instance_is_an_error_unless_accepted(dense, tmp_path):
    from cvatflow.training import data as datalib

    coco = json.loads((dense / "annotations/instances_default.json").read_text())
    coco["categories"].append({"id": 2, "name": "nucleus"})
    coco["annotations"].append({"id": 999, "image_id": 3, "category_id": 2, "bbox": [100, 100, 8, 8]})
    root = tmp_path / "data"
    import shutil

    shutil.copytree(dense, root)
    (root / "annotations/instances_default.json").write_text(json.dumps(coco))
    (root / "train_val_split.json").write_text(json.dumps({"train": [1, 2], "val": [3]}))
    with pytest.raises(TrainingError, match="nucleus.*allow_untrained_classes"):
        datalib.load(root)
    data = datalib.load(root, allow_untrained=True)
    assert data.split["untrained_classes"] == ["nucleus"]
    assert data.split["classes"]["nucleus"]["val"] == {"objects": 1, "images": 1}
    # the random split puts nucleus's only image in train
    (root / "train_val_split.json").unlink()
    for seed in range(5):
        assert 3 in datalib.load(root, val_percent=34, seed=seed).train_ids


def test_prepare_and_inspect_show_the_split_per_class_and_the_density(cli, tmp_path):
    from cvatflow.datasets.synth import make_export

    export = make_export(tmp_path / "synth.zip", images=12, size=64)
    result = cli("dataset", "prepare", export, "--out", tmp_path / "ds", "--val-split", 25)
    assert result.code == 0, result.err
    split = json.loads((tmp_path / "ds/train_val_split.json").read_text())
    assert split["stratified"] and split["untrained_classes"] == []
    for name in ("circle", "square", "triangle"):
        counts = split["classes"][name]
        assert counts["train"]["images"] >= 1 and counts["val"]["images"] >= 1
        assert f"{counts['train']['objects']} / {counts['train']['images']}" in result.out
    assert "train objects / images" in result.out and "objects per image: max" in result.out
    result = cli("dataset", "inspect", tmp_path / "ds", "--json")
    fit = json.loads(result.out)["fit"]
    assert fit["classes"] == split["classes"] and fit["objects_per_image"]["max"] >= 1
    assert {row["model"] for row in fit["small_objects"]} >= {"detr_resnet50", "maskrcnn_resnet18_fpn"}
