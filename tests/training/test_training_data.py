"""COCO reading: file resolution, split, validation errors, decoded items and the resumable batch sampler."""
from __future__ import annotations

import json
import shutil

import pytest

from cvatflow.errors import TrainingError
from cvatflow.training import data as datalib
from training_fixtures import make_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "d", images=10, size=96)


def copy(dataset, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(dataset, target)
    return target


def rewrite(root, change):
    path = root / datalib.ANNOTATIONS
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))


def test_load_split_and_categories(dataset):
    data = datalib.load(dataset, val_percent=20, seed=3)
    assert data.class_titles == ["circle", "square", "triangle"]
    assert len(data.val_ids) == 2 and len(data.train_ids) == 8
    assert not set(data.val_ids) & set(data.train_ids)
    assert data.split["method"] == "random" and data.split["seed"] == 3
    assert datalib.load(dataset, val_percent=20, seed=3).val_ids == data.val_ids  # seeded
    assert data.has_masks


def test_split_file_is_used(dataset, tmp_path):
    root = copy(dataset, tmp_path)
    (root / datalib.SPLIT_FILE).write_text(json.dumps({"train": [1, 2, 3], "val": [4], "method": "tags"}))
    data = datalib.load(root)
    assert (data.train_ids, data.val_ids) == ([1, 2, 3], [4])
    (root / datalib.SPLIT_FILE).write_text(json.dumps({"train": [1, 99], "val": [4]}))
    with pytest.raises(TrainingError, match="99"):
        datalib.load(root)


def test_file_name_resolution(dataset, tmp_path):
    root = copy(dataset, tmp_path)
    images = root / "images"
    name = sorted(p.name for p in images.iterdir())[0]
    (root / "sub").mkdir()
    shutil.copy(images / name, root / "sub" / name)
    assert datalib.resolve_image(root, name) == images / name
    assert datalib.resolve_image(root, str(images / name)) == images / name  # absolute and present
    assert datalib.resolve_image(root, f"sub/{name}") == root / "sub" / name  # relative to the data folder
    # Onepanel's absolute mount prefix, mounted elsewhere here
    assert datalib.resolve_image(root, f"/mnt/data/datasets/images/{name}") == images / name
    assert datalib.resolve_image(root, "/mnt/data/datasets/images/nope.jpg") is None


def test_missing_images_is_one_clear_error(dataset, tmp_path):
    root = copy(dataset, tmp_path)
    for path in list((root / "images").iterdir())[:3]:
        path.unlink()
    with pytest.raises(TrainingError, match=r"3 of 10 images are missing.*Save images"):
        datalib.load(root)


@pytest.mark.parametrize("change, words", [
    (lambda c: c.update(images=[], annotations=[]), "no images"),
    (lambda c: c.update(annotations=[]), "no annotations"),
    (lambda c: c.update(categories=[]), "no categories"),
    (lambda c: c["annotations"][0].update(category_id=42), "category_id 42"),
])
def test_empty_or_inconsistent_dataset(dataset, tmp_path, change, words):
    root = copy(dataset, tmp_path)
    rewrite(root, change)
    with pytest.raises(TrainingError, match=words):
        datalib.load(root)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(TrainingError, match="instances_default.json not found"):
        datalib.load(tmp_path)


def test_items_are_resized_with_boxes_and_masks(dataset):
    data = datalib.load(dataset)
    ds = datalib.DetectionDataset(data, data.train_ids, image_size=64, masks=True)
    image, target = ds[0]
    assert image.dtype.is_floating_point is False and tuple(image.shape) == (3, 64, 64)
    n = len(target["labels"])
    assert n >= 1 and target["boxes"].shape == (n, 4) and target["masks"].shape == (n, 64, 64)
    box = target["boxes"][0]
    mask = target["masks"][0]
    ys, xs = mask.nonzero(as_tuple=True)
    # the polygon mask lies inside its (scaled) box
    assert xs.min() >= box[0] - 1.5 and xs.max() <= box[2] + 1.5 and ys.min() >= box[1] - 1.5
    assert target["scale"] == (64 / 96, 64 / 96) and target["orig_size"] == (96, 96)


def test_batch_sampler_resumes_mid_epoch():
    sampler = datalib.EpochBatchSampler(10, 3, seed=5)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_batch=2)
    assert list(sampler) == full[2:] and len(sampler) == 2
    sampler.set_epoch(3)
    assert list(sampler) != full
    # indices carry the epoch (epoch * size + sample) so the dataset can seed augmentation per sample and epoch
    assert sorted(i for b in full for i in b) == list(range(20, 30))
