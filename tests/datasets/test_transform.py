"""The transform pipeline: each layer's counts and geometry on hand-made samples, and the seed's pipeline end to end."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from cvatflow.datasets import transform as tf
from cvatflow.errors import DatasetError


def _sample(h=20, w=30, boxes=(("a", 2, 3, 6, 5),), tags=()):
    """A sample with rectangle objects (category, x0, y0, x1, y1); pixel (y, x) holds x + 100 * y in channel 0."""
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = (np.arange(w)[None, :] + np.arange(h)[:, None]) % 256
    objects = []
    for name, x0, y0, x1, y1 in boxes:
        mask = np.zeros((h, w), bool)
        mask[y0:y1, x0:x1] = True
        objects.append({"category": name, "mask": mask})
    return tf.Sample("s", image, objects, list(tags))


def _run(samples, *layers):
    return tf.apply(samples, tf.parse(list(layers)))


def test_class_mapping_renames_and_drops_unused():
    s = _sample(boxes=(("cat", 0, 0, 2, 2), ("neutral", 3, 3, 5, 5), ("dog", 6, 6, 8, 8)))
    out, [c] = _run([s], {"action": "class_mapping", "mapping": {"neutral": "unused", "__other__": "obj"}})
    assert [o["category"] for o in out[0].objects] == ["obj", "obj"]
    assert (c.objects_in, c.objects_out, c.dropped) == (3, 2, {"class 'neutral' mapped to unused": 1})
    assert [o["category"] for o in s.objects] == ["cat", "neutral", "dog"]  # the input is not changed


def test_objects_filter_by_area_percent():
    # 20x30 = 600 px: a 2x3 box is 1%, a 1x5 box is 0.83%
    s = _sample(boxes=(("obj", 0, 0, 2, 3), ("obj", 10, 10, 15, 11), ("other", 20, 10, 21, 11)))
    out, [c] = _run([s], {"action": "objects_filter", "classes": ["obj"], "min_area_percent": 1})
    assert [int(o["mask"].sum()) for o in out[0].objects] == [6, 1]  # 'other' is not filtered
    assert c.dropped == {"area under 1% of the image": 1}


def test_instances_crop_pads_and_clips():
    s = _sample(h=40, w=40, boxes=(("obj", 10, 20, 14, 22), ("obj", 0, 0, 2, 2)))
    out, [c] = _run([s], {"action": "instances_crop", "pad": {"left": 100, "right": 50, "top": 200, "bottom": 0}})
    assert len(out) == 2 and c.samples_out == 2
    first = out[0]
    # box x 10..14 (w 4), y 20..22 (h 2): left 4, right 2, top 4, bottom 0 -> x 6..16, y 16..22
    assert (first.width, first.height) == (10, 6)
    assert np.array_equal(first.image, s.image[16:22, 6:16])
    assert tf._box(first.objects[0]["mask"]) == (4, 4, 8, 6)
    assert len(first.objects) == 1
    # the corner object: padding clipped at the image border
    assert (out[1].width, out[1].height) == (3, 2)  # x 0..2+1 (left clipped), y 0..2 (top clipped, bottom 0)
    assert c.dropped == {"other object in the instance's crop": 2}


def test_split_tags_seeded():
    samples = [_sample() for _ in range(200)]
    out, _ = _run(samples, {"action": "split_tags", "val_probability": 0.25, "seed": 3})
    again, _ = _run(samples, {"action": "split_tags", "val_probability": 0.25, "seed": 3})
    tags = [s.tags for s in out]
    assert tags == [s.tags for s in again] and all(t in (["train"], ["val"]) for t in tags)
    assert 30 <= sum(t == ["val"] for t in tags) <= 70


def test_flip_moves_masks_and_points():
    s = _sample(boxes=(("obj", 2, 3, 6, 5),))
    s.pos = [[2.5, 3.5]]
    out, [c] = _run([s], {"action": "flip", "axis": "vertical"})
    assert c.samples_out == 2 and out[0] is s
    flipped = out[1]
    assert tf._box(flipped.objects[0]["mask"]) == (24, 3, 28, 5)  # x 2..6 of 30 -> 24..28
    assert flipped.pos == [[27.5, 3.5]]
    assert np.array_equal(flipped.image, s.image[:, ::-1])
    out, _ = _run([s], {"action": "flip", "axis": "horizontal", "keep_original": False})
    assert len(out) == 1 and tf._box(out[0].objects[0]["mask"]) == (2, 15, 6, 17)


def test_multiply_and_random_crop_bounds():
    s = _sample(h=100, w=100, boxes=(("obj", 0, 0, 10, 10),))
    out, counts = _run([s], {"action": "multiply", "times": 3},
                       {"action": "random_crop", "min_percent": 20, "max_percent": 40, "seed": 1})
    assert [c.samples_out for c in counts] == [3, 3]
    for crop in out:
        assert 20 <= crop.height <= 40 and 20 <= crop.width <= 40
    kept = sum(len(c.objects) for c in out)
    assert counts[1].objects_out == kept and counts[1].dropped.get("outside the random crop", 0) == 3 - kept


def test_sample_filter_counts_samples_and_their_objects():
    samples = [_sample(h=10, w=60), _sample(h=60, w=10), _sample(h=60, w=60, boxes=()), _sample(h=60, w=60)]
    out, [c] = _run(samples, {"action": "sample_filter", "min_height": 50, "min_width": 50, "min_objects": 1})
    assert len(out) == 1
    assert c.dropped == {"sample under the minimum height": 1, "sample under the minimum width": 1,
                         "sample with too few objects": 1, "on a dropped sample": 2}


def test_resize_scales_masks_and_points():
    s = _sample(h=20, w=40, boxes=(("obj", 10, 5, 20, 15), ("obj", 0, 0, 1, 1)))
    s.pos = [[12.0, 6.0]]
    out, [c] = _run([s], {"action": "resize", "width": 20, "height": 40})
    r = out[0]
    assert (r.width, r.height) == (20, 40)
    assert tf._box(r.objects[0]["mask"]) == (5, 10, 10, 30)
    assert r.pos == [[6.0, 12.0]]
    assert c.dropped == {"vanished in the resize": 1}  # a 1x1 object at half width
    out, _ = _run([s], {"action": "resize", "width": 20, "height": 20, "keep_aspect": True})
    assert (out[0].width, out[0].height) == (20, 10)


def test_generate_points_on_and_off_the_object():
    s = _sample(h=30, w=30, boxes=(("obj", 5, 5, 10, 10), ("obj", 20, 20, 25, 25)))
    out, _ = _run([s], {"action": "generate_points", "min_points": 3, "max_points": 3, "seed": 0})
    r = out[0]
    assert len(r.pos) == 3 and len(r.neg) == 3
    target, other = (o["mask"] for o in r.objects)
    for x, y in r.pos:
        assert target[int(y), int(x)]
    for x, y in r.neg:
        assert not target[int(y), int(x)] and not other[int(y), int(x)]


def test_bad_layer_is_one_clear_error():
    with pytest.raises(DatasetError, match="layer 0.*min_area_percent"):
        tf.parse([{"action": "objects_filter"}])
    with pytest.raises(DatasetError, match="actions: class_mapping"):
        tf.parse([{"action": "explode"}])
    with pytest.raises(DatasetError, match="non-empty list"):
        tf.parse({"action": "flip"})


def test_seed_pipeline_on_synthetic_shapes(tmp_path):
    from cvatflow.datasets.report import read
    from cvatflow.datasets.synth import make_export
    from cvatflow.training.data import load

    export = make_export(tmp_path / "export.zip", images=6, seed=0, size=128)
    result = tf.transform(export, tmp_path / "out")
    layers = result["layers"]
    assert [c["action"] for c in layers] == [layer["action"] for layer in tf.SMARTTOOL_PIPELINE]
    for before, after in itertools.pairwise(layers):  # each layer starts where the last one ended
        assert (after["samples_in"], after["objects_in"]) == (before["samples_out"], before["objects_out"])
    assert layers[0]["samples_in"] == 6 and result["samples"] == layers[-1]["samples_out"] > 0
    coco = json.loads((tmp_path / "out" / "annotations" / "instances_default.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["obj"]
    assert len(coco["images"]) == result["samples"] and len(coco["annotations"]) == result["objects"]
    for image in coco["images"]:
        assert (image["width"], image["height"]) == (256, 256) and image["points"]["pos"]
        assert image["tags"] in (["train"], ["val"])
    assert read(tmp_path / "out").options["transform"] == layers
    data = load(tmp_path / "out")  # training reads it, with the split the tags gave
    assert data.split["method"] == "tags"
