"""Seeded multi-label stratified train/val split: a class on two or more images lands in both, a rare one in train.

The method is greedy iterative stratification, rarest class first (Sechidis, Tsoumakas and Vlahavas, "On the
Stratification of Multi-Label Data", ECML PKDD 2011), followed by a repair pass that gives the guarantees the
greedy step alone does not:

1. Each image carries the set of classes of its non-crowd annotations (crowd regions are not trained on).
2. Classes are visited from the fewest images to the most; each unassigned image of the class goes to the side
   (train or val) that still wants the most images of that class, ties broken by the side with the most room
   left, then by train. The last unassigned image of a class goes to train if the class has no train image yet,
   else to val if the class (on two or more images) has none there. Images without annotations fill the room left.
3. Repair (images assigned for a rarer class may leave a later one uncovered): a class with no train image gets
   one of its val images moved to train (one whose other classes keep a val image, fewest classes first); then a
   class on two or more images with no val image gets one of its train images moved to val, but only one whose
   every class keeps a train image.
4. Val is brought back to its size with moves that keep all of the above.

So a class on one image is always trained on, and a class on two or more images is in both splits whenever that
is possible without taking the last training image of another class. The same seed gives the same split.
scikit-multilearn and iterative-stratification implement step 2 but pull in scikit-learn and give no step 3.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Any


def image_classes(coco: dict[str, Any]) -> dict[Any, set[Any]]:
    """Image id -> the category ids of its non-crowd annotations (every image present, possibly empty)."""
    classes: dict[Any, set[Any]] = {image["id"]: set() for image in coco.get("images", [])}
    for ann in coco.get("annotations", []):
        if not ann.get("iscrowd") and ann.get("image_id") in classes:
            classes[ann["image_id"]].add(ann.get("category_id"))
    return classes


def val_count(images: int, val_percent: float) -> int:
    """How many of `images` go to validation: the rounded percentage, at least one when there are two or more."""
    count = round(images * val_percent / 100)
    if val_percent > 0 and images > 1:
        count = max(1, count)
    return min(count, max(images - 1, 0))


def stratified(coco: dict[str, Any], val_percent: float, seed: int = 0) -> tuple[list[Any], list[Any]]:
    """(train ids, val ids) of `coco["images"]`, each in the order of `coco["images"]`; see the module docstring.

    `val_percent` is 0 to <100 (the caller checks); the val side gets about that share of the images."""
    labels = image_classes(coco)
    ids = list(labels)
    order = ids[:]
    random.Random(seed).shuffle(order)
    rank = {image_id: i for i, image_id in enumerate(order)}
    n_val = val_count(len(ids), val_percent)
    fraction = n_val / len(ids) if ids else 0.0
    by_class: dict[Any, list[Any]] = defaultdict(list)
    for image_id in order:
        for cat in labels[image_id]:
            by_class[cat].append(image_id)
    # wanted[side][class]: images of the class each side still wants; room[side]: images it still takes
    wanted = {"val": {c: len(v) * fraction for c, v in by_class.items()},
              "train": {c: len(v) * (1 - fraction) for c, v in by_class.items()}}
    room = {"val": n_val, "train": len(ids) - n_val}
    side_of: dict[Any, str] = {}
    placed: dict[str, Counter] = {"train": Counter(), "val": Counter()}  # images of each class per side

    def put(image_id: Any, side: str) -> None:
        side_of[image_id] = side
        room[side] -= 1
        for cat in labels[image_id]:
            wanted[side][cat] -= 1
            placed[side][cat] += 1

    for cat in sorted(by_class, key=lambda c: (len(by_class[c]), str(c))):
        left = [i for i in by_class[cat] if i not in side_of]
        for k, image_id in enumerate(left):
            last = k == len(left) - 1
            if last and not placed["train"][cat]:
                put(image_id, "train")  # a class's last chance to be trained on
            elif last and not placed["val"][cat] and len(by_class[cat]) >= 2 and room["val"] > 0:
                put(image_id, "val")
            else:
                open_sides = [s for s in ("train", "val") if room[s] > 0] or ["train"]
                put(image_id, max(open_sides, key=lambda s: (wanted[s][cat], room[s], s == "train")))
    for image_id in order:
        if image_id not in side_of:
            put(image_id, "val" if room["val"] > 0 else "train")
    if n_val:
        _repair(labels, by_class, side_of, rank)
        _resize_val(labels, by_class, side_of, rank, n_val)
    train = [i for i in ids if side_of[i] == "train"]
    val = [i for i in ids if side_of[i] == "val"]
    return train, val


class _Sides:
    """Which side each image is on, with per-class image counts per side kept current as images move."""

    def __init__(self, labels: dict[Any, set[Any]], side_of: dict[Any, str]):
        self.labels, self.side_of = labels, side_of
        self.placed = {"train": Counter(), "val": Counter()}
        self.size = Counter(side_of.values())
        for image_id, side in side_of.items():
            self.placed[side].update(labels[image_id])

    def count(self, cat: Any, side: str) -> int:
        return self.placed[side][cat]

    def move(self, image_id: Any, side: str) -> None:
        old = self.side_of[image_id]
        self.side_of[image_id] = side
        self.size[old] -= 1
        self.size[side] += 1
        self.placed[old].subtract(self.labels[image_id])
        self.placed[side].update(self.labels[image_id])


def _repair(labels: dict[Any, set[Any]], by_class: dict[Any, list[Any]], side_of: dict[Any, str],
            rank: dict[Any, int]) -> None:
    """Move images so every class has a train image and, where possible, a class on 2+ images a val image."""
    classes = sorted(by_class, key=lambda c: (len(by_class[c]), str(c)))
    sides = _Sides(labels, side_of)
    for cat in classes:  # only adds train images: afterwards every class has one
        if sides.count(cat, "train") == 0:
            # keep val coverage of the image's other classes where possible, then move the simplest image
            sides.move(min(by_class[cat], key=lambda i: (
                any(sides.count(c, "val") == 1 for c in labels[i] if c != cat), len(labels[i]), rank[i])), "train")
    for cat in classes:  # moves only images whose every class keeps a train image
        if len(by_class[cat]) >= 2 and sides.count(cat, "val") == 0:
            movable = [i for i in by_class[cat] if all(sides.count(c, "train") >= 2 for c in labels[i])]
            if movable:
                sides.move(min(movable, key=lambda i: (len(labels[i]), rank[i])), "val")


def _resize_val(labels: dict[Any, set[Any]], by_class: dict[Any, list[Any]], side_of: dict[Any, str],
                rank: dict[Any, int], n_val: int) -> None:
    """Bring val back to `n_val` images after the repair, moving only images whose move keeps every class's
    train image and (for classes on 2+ images) val image."""
    sides = _Sides(labels, side_of)
    while sides.size["val"] != n_val:
        source = "val" if sides.size["val"] > n_val else "train"
        target = "train" if source == "val" else "val"
        candidates = sorted((i for i, side in side_of.items() if side == source),
                            key=lambda i: (-len(labels[i]) if source == "val" else len(labels[i]), rank[i]))
        moved = 0
        for image_id in candidates:
            if sides.size["val"] == n_val:
                break
            if all(sides.count(c, source) >= 2 or (source == "val" and len(by_class[c]) < 2)
                   for c in labels[image_id]):
                sides.move(image_id, target)
                moved += 1
        if not moved:
            return


def untrained_classes(coco: dict[str, Any], train_ids: list[Any]) -> list[str]:
    """Names of the categories annotated in the dataset but with no non-crowd annotation on a train image, in
    `categories` order. A label with no object at all (common in CVAT: a project's label list) is not one: the
    dataset report already warns about it, and refusing it would block tasks that never used a label."""
    train = set(train_ids)
    positives = [ann for ann in coco.get("annotations", []) if not ann.get("iscrowd")]
    annotated = {ann.get("category_id") for ann in positives}
    seen = {ann.get("category_id") for ann in positives if ann.get("image_id") in train}
    return [str(c.get("name", c.get("id"))) for c in coco.get("categories", [])
            if c.get("id") in annotated and c.get("id") not in seen]


def untrained_message(names: list[str], source: str) -> str:
    """The error text for classes that nothing trains: names them and gives the fixes."""
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return (f"{source}: {len(names)} class{'es' if len(names) != 1 else ''} ha{'ve' if len(names) != 1 else 's'} "
            f"no training instance ({shown}); the model would never learn {'them' if len(names) != 1 else 'it'}. "
            f"Annotate {'them' if len(names) != 1 else 'it'} on training images, delete unused labels, use the "
            f"random (stratified) split, or accept it with the hyperparameter allow_untrained_classes: true")


def split_stats(coco: dict[str, Any], division: dict[str, Any], allow_untrained: bool, source: str,
                error: type[Exception] | None = None) -> dict[str, Any]:
    """What train_val_split.json records beside the ids: per-class {"train"|"val": {"objects", "images"}}
    (`classes`) and `untrained_classes`. Raises `error` (default DatasetError) naming `source` when a class has
    no training instance, unless `allow_untrained`."""
    from cvatflow.datasets.stats import class_counts
    from cvatflow.errors import DatasetError

    untrained = untrained_classes(coco, division["train"])
    if untrained and not allow_untrained:
        raise (error or DatasetError)(untrained_message(untrained, source))
    return {"classes": class_counts(coco, {"train": division["train"], "val": division["val"]}),
            "untrained_classes": untrained}
