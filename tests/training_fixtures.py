"""Small COCO datasets on disk for the training tests, from the synthetic shapes generator."""
from __future__ import annotations

import zipfile
from pathlib import Path


def make_dataset(root: Path, images: int = 16, seed: int = 0, size: int = 128) -> Path:
    """Extract a synthetic CVAT COCO 1.0 export into `root` (annotations/ + images/) and return `root`."""
    from cvatflow.datasets.synth import make_export

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    archive = make_export(root.parent / f".{root.name}-{images}-{seed}.zip", images=images, seed=seed, size=size)
    with zipfile.ZipFile(archive) as z:
        z.extractall(root)
    archive.unlink()
    return root
