"""DETR's backbone trains layer2-4 and keeps the stem and layer1 frozen, as the DETR reference does."""
from __future__ import annotations

import re

import torch

from cvatflow.models.detr import DetrAdapter


def per_stage(model) -> dict[str, tuple[int, int]]:
    """(trainable, all) parameter counts of the backbone's stem and each ResNet stage."""
    counts: dict[str, tuple[int, int]] = {}
    for name, param in model.model.backbone.named_parameters():
        match = re.search(r"encoder\.stages\.(\d+)\.", name)
        key = f"stage{match.group(1)}" if match else "stem"
        trainable, total = counts.get(key, (0, 0))
        counts[key] = (trainable + param.numel() * param.requires_grad, total + param.numel())
    return counts


def check_recipe(model) -> None:
    counts = per_stage(model)
    assert set(counts) == {"stem", "stage0", "stage1", "stage2", "stage3"}
    assert counts["stem"][0] == 0 and counts["stage0"][0] == 0  # frozen: stem and layer1
    for stage in ("stage1", "stage2", "stage3"):  # trained: layer2, layer3, layer4
        assert counts[stage][0] == counts[stage][1] > 0, (stage, counts)


def test_detr_small_trains_layer2_to_4_only():
    adapter = DetrAdapter()
    settings = adapter.settings("detr_small", 64)
    check_recipe(adapter.build(settings, 3, pretrained=False))
    # rebuilt from the saved config (resume, predict): the same stages train
    check_recipe(adapter.build(settings, 3, pretrained=False))


def test_a_step_moves_layer2_and_not_the_stem():
    torch.manual_seed(0)
    adapter = DetrAdapter()
    model = adapter.build(adapter.settings("detr_small", 64), 2, pretrained=False)
    before = {n: p.detach().clone() for n, p in model.model.backbone.named_parameters()}
    images = [torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([1])} for _ in range(2)]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    adapter.losses(model, images, targets, torch.device("cpu"))["sum"].backward()
    optimizer.step()
    moved = {n for n, p in model.model.backbone.named_parameters() if not torch.equal(p, before[n])}
    assert any("stages.1." in n for n in moved) and any("stages.3." in n for n in moved)
    assert not any("embedder" in n or "stages.0." in n for n in moved)
