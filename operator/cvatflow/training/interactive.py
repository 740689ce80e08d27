"""The harness's Trainer for interactive segmentation: validation by simulated clicks (NoC@85/90, mIoU@1/3/5)."""
from __future__ import annotations

from typing import Any

from cvatflow import events
from cvatflow.training import distributed
from cvatflow.training import state as statelib
from cvatflow.training.checkpoints import load
from cvatflow.training.loop import Trainer
from cvatflow.training.setup import log

METRICS = ("NoC@85", "NoC@90", "mIoU@1", "mIoU@3", "mIoU@5", "NoF@90")


class InteractiveTrainer(Trainer):
    """Same loop, checkpoints, resume, DDP and ONNX as every model; the best checkpoint has the lowest NoC@90
    (ties: higher mIoU@5)."""

    def evaluate(self, model=None) -> dict[str, Any] | None:
        """Click-simulation metrics of `model` (default: the trained one) on up to `val_objects` validation objects;
        every rank clicks on its share, rank 0 returns the summary (None elsewhere)."""
        from cvatflow.models.interactive import segment
        from cvatflow.models.interactive_clicks import click_ious, summarize

        model = model or self.model
        settings = self.setup.settings
        max_clicks = int(settings.get("max_clicks", 20))
        radius = float(settings.get("click_radius", 5.0))
        distributed.broadcast_buffers(self.world, model)
        model.eval()
        curves = []
        budget = max(1, int(settings.get("val_objects", 200)) // self.world.size)
        for images, targets in self.val_loader:
            for image, target in zip(images, targets):
                for mask in target["masks"]:
                    if len(curves) >= budget:
                        break
                    gt = mask.numpy().astype(bool)
                    def predict(clicks, image=image):
                        return segment(model, image, clicks, self.device, radius) > 0.5

                    curves.append(click_ious(predict, gt, max_clicks))
        self.model.train()
        shares = distributed.gather(self.world, curves)
        if shares is None:
            return None
        return summarize([c for share in shares for c in share], max_clicks)

    def _record_validation(self, metrics: dict[str, Any], writer) -> None:
        values = {k: metrics[k] for k in METRICS}
        events.emit(events.metrics("val", self.epoch(), values))
        for key, value in values.items():
            writer.add_scalar(f"val/{key}", value, self.step)
        self.history.append({"type": "val", "step": self.step, "epoch": self.epoch(), **values})
        log(f"step {self.step}/{self.total} epoch {self.epoch():.2f}: NoC@85 {values['NoC@85']:.2f} NoC@90 "
            f"{values['NoC@90']:.2f} mIoU@1 {values['mIoU@1']:.3f} mIoU@5 {values['mIoU@5']:.3f} "
            f"({metrics['objects']} objects)")
        score = -values["NoC@90"] + 1e-3 * values["mIoU@5"]
        best_now = self.best_step is None or score > self.best
        if best_now:
            self.best, self.best_step, self.best_metrics = score, self.step, metrics
        payload = self.payload()
        light = {k: v for k, v in payload.items() if k not in ("optimizer", "scheduler", "scaler", "ema")}
        if self.ema:
            light["model"] = self.ema.module.state_dict()
        self.checkpoints.save_numbered(self.step, light, best_now, {"NoC@90": values["NoC@90"],
                                                                    "mIoU@5": values["mIoU@5"]})
        self.checkpoints.save_last(payload)

    def _finish(self) -> dict[str, Any]:
        """As training/outputs.finish, with the click metrics: model/, export/best.onnx, report/metrics.json,
        model_meta.json (one class `obj`, shape bitmap), experiment_info.json."""
        world = self.world
        best = load(self.output / "checkpoints" / "best.pt") if world.main else None
        if best is not None:
            self.model.load_state_dict(best["model"])
        distributed.broadcast_state(world, self.model)
        # the best checkpoint's validation (same weights, same objects) unless resumed or distributed, where
        # every rank evaluates it again
        known = getattr(self, "best_metrics", None)
        final = known if known is not None and not world.distributed else self.evaluate()
        if world.main:
            import datetime

            titles = ["obj"]
            config = statelib.model_config({**self.setup.settings, "hyperparameters": self.hp.to_dict()}, titles,
                                           "bitmap")
            statelib.write_model_state(self.output / "model", config,
                                       {k: v.cpu() for k, v in self.model.state_dict().items()})
            exported = None
            if self.run.export:
                from cvatflow.training.export import export_onnx

                exported = export_onnx(self.adapter, self.model, self.output / "export" / "best.onnx",
                                       self.hp.image_size)
                self.model.to(self.device)
            statelib.write_json(self.output / "report" / "metrics.json",
                                {**final, "best_step": best["step"], "history": self.history})
            statelib.write_json(self.output / "model_meta.json", statelib.model_meta(titles, "bitmap"))
            statelib.write_json(self.output / "experiment_info.json", {
                "experiment_name": f"{self.setup.variant} on {self.run.data.name}",
                "framework_name": self.adapter.framework, "model_name": self.setup.variant,
                "task_type": self.adapter.task_type,
                "model_files": {"config": "model/config.json", "weights": f"model/{statelib.WEIGHTS}"},
                "best_checkpoint": "best.pt", "export": {"ONNXRuntime": "export/best.onnx"} if exported else {},
                "evaluation_metrics": final, "primary_metric": "NoC@90", "steps": self.step,
                "best_step": best["step"], "device": str(self.device), "train_size": len(self.train_set),
                "val_size": len(self.val_set), "dataset_report": "dataset_report.json",
                "datetime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")})
            log(f"done: best NoC@90 {final['NoC@90']:.2f}, mIoU@5 {final['mIoU@5']:.3f} at step {best['step']}; "
                f"model state in {self.output / 'model'}")
        distributed.barrier(world)
        return distributed.share(world, final)
