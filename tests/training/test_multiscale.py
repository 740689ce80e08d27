"""Multi-scale training: batch sizes drawn per step around image_size, a fixed size at the end and in evaluation."""
from __future__ import annotations

import contextlib
import io

import pytest
import torch

from cvatflow.models import get_adapter
from cvatflow.training.multiscale import MultiScale, rescale, scales
from training_fixtures import make_dataset


def test_scales_are_rt_detrs_list_at_640_and_scaled_below():
    # lyuwenyu/RT-DETR rtdetrv2_pytorch/configs/rtdetrv2/include/dataloader.yml
    assert scales(640) == [480, 512, 544, 576, 608, 640, 640, 640, 672, 704, 736, 768, 800]
    assert scales(256) == [192, 224, 256, 256, 256, 288, 320]
    assert min(scales(32)) >= 32


def test_sizes_vary_then_stop_at_image_size():
    ms = MultiScale(128, total=100, until=0.8, seed=0)
    early = {ms.size(s) for s in range(80)}
    assert len(early) > 1 and early <= set(scales(128))
    assert {ms.size(s) for s in range(80, 100)} == {128}
    assert ms.size(7) == MultiScale(128, 100, 0.8, 0).size(7)  # every rank draws the same


def test_rescale_scales_images_boxes_and_masks():
    image = torch.zeros((3, 40, 80), dtype=torch.uint8)
    target = {"boxes": torch.tensor([[10.0, 4.0, 30.0, 20.0]]), "labels": torch.tensor([0]),
              "masks": torch.zeros((1, 40, 80), dtype=torch.uint8)}
    (out,), (t,) = rescale(([image], [target]), 1.5)
    assert out.shape == (3, 60, 120) and t["masks"].shape == (1, 60, 120)
    assert t["boxes"].tolist() == [[15.0, 6.0, 45.0, 30.0]]
    assert target["boxes"].tolist() == [[10.0, 4.0, 30.0, 20.0]]  # the dataset's target is not changed


def test_recipe_defaults_turn_it_on_where_the_configs_do():
    adapter = get_adapter("rtdetr")
    assert adapter.default_hyperparameters("rtdetr_v2_r50vd")["multi_scale"] is True
    assert adapter.default_hyperparameters("rtdetr_v2_r18vd")["multi_scale"] is False  # r18vd config: scales ~
    assert adapter.default_hyperparameters("dfine_l")["multi_scale_until"] == 0.9  # stop_epoch 72 of 80


@pytest.mark.slow
def test_training_batches_vary_and_evaluation_uses_image_size(tmp_path):
    from cvatflow.training.loop import Run, Setup, Trainer

    data = make_dataset(tmp_path / "data", images=10, seed=1, size=128)
    hp = ("max_steps: 8\nbatch_size: 2\nimage_size: 128\nnum_workers: 0\nval_every: 100\nwarmup_steps: 1\n"
          "val_percent: 20\nmulti_scale: true\nmulti_scale_until: 0.5\n")
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = Trainer(Setup(Run(model="rtdetr", data=data, output=tmp_path / "out", hyperparameters=hp,
                                    variant="rtdetr_v2_tiny", export=False)))
        seen = {"train": [], "eval": []}
        losses, predict = trainer.adapter.losses, trainer.adapter.predict

        def spy_losses(model, images, *args, **kwargs):
            seen["train"].append(max(max(i.shape[-2:]) for i in images))
            return losses(model, images, *args, **kwargs)

        def spy_predict(model, images, *args, **kwargs):
            seen["eval"].append(max(max(i.shape[-2:]) for i in images))
            return predict(model, images, *args, **kwargs)

        trainer.adapter.losses, trainer.adapter.predict = spy_losses, spy_predict
        trainer.train()
    assert len(seen["train"]) == 8
    assert len(set(seen["train"][:4])) > 1, seen  # multi-scale for the first half
    assert seen["train"][4:] == [128] * 4, seen  # then image_size
    assert seen["eval"] and set(seen["eval"]) == {128}, seen
