"""After training, and around it: the files of a run's output folder (rank 0 writes them all)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cvatflow.training import distributed
from cvatflow.training import state as statelib
from cvatflow.training.checkpoints import load
from cvatflow.training.hyperparameters import annotated_yaml
from cvatflow.training.setup import log


def write_start(t) -> None:
    """hyperparameters.yaml, train_val_split.json, dataset_report.json, and the run's opening log lines."""
    t.output.mkdir(parents=True, exist_ok=True)
    text = annotated_yaml(t.hp, t.setup.sources)
    log("hyperparameters (effective values, each with its source):\n" + text.rstrip())
    (t.output / "hyperparameters.yaml").write_text(text)
    statelib.write_json(t.output / "train_val_split.json", t.setup.data.split)
    dataset_report = t.setup.data.report
    dataset_report.write(t.output)  # what of the CVAT annotations reaches the model, with the run
    log(f"dataset report: {dataset_report.summary()}")
    for line in dataset_report.warnings():
        log(f"warning: {line}")
    log(f"model {t.setup.variant} on {t.device}; {len(t.train_set)} train / {len(t.val_set)} val "
        f"images, {len(t.setup.data.categories)} classes; {t.total} steps "
        f"({t.steps_per_epoch} per epoch){'; amp ' + str(t.amp) if t.amp else ''}")
    classes = t.setup.data.split.get("classes", {})
    log("objects / images per class (train | val): " + "; ".join(
        f"{name} {c['train']['objects']}/{c['train']['images']} | {c['val']['objects']}/{c['val']['images']}"
        for name, c in classes.items()))
    if t.setup.data.split.get("untrained_classes"):
        log(f"warning: no training instance of {', '.join(t.setup.data.split['untrained_classes'])} "
            f"(allow_untrained_classes is on)")


def finish(t) -> dict[str, Any]:
    """The best model everywhere (every rank evaluates it); rank 0 writes model/, the ONNX export, report/,
    model_meta.json and experiment_info.json. Returns the best model's evaluation on every rank."""
    from cvatflow.training import report

    world = t.world
    best = load(t.output / "checkpoints" / "best.pt") if world.main else None
    if best is not None:
        t.model.load_state_dict(best["model"])
    distributed.broadcast_state(world, t.model)  # every rank evaluates the best model
    final = t.evaluate()  # the best model's full metrics, for the report (rank 0's; None elsewhere)
    if world.main:
        titles = t.setup.data.class_titles
        shape = "bitmap" if t.adapter.masks else "rectangle"
        config = statelib.model_config({**t.setup.settings, "hyperparameters": t.hp.to_dict()}, titles, shape)
        statelib.write_model_state(t.output / "model", config, {k: v.cpu() for k, v in
                                                                    t.model.state_dict().items()})
        exported = None
        if t.run.export:
            from cvatflow.training.export import export_onnx

            exported = export_onnx(t.adapter, t.model, t.output / "export" / "best.onnx", t.hp.image_size)
        report.write(t.output / "report", t.history, final, best_step=best["step"])
        statelib.write_json(t.output / "model_meta.json", statelib.model_meta(titles, shape))
        statelib.write_json(t.output / "experiment_info.json", experiment_info(t, final, best, exported))
        log(f"done: best mAP {final['mAP']:.4f} at step {best['step']}; model state in {t.output / 'model'}")
    distributed.barrier(world)  # nobody exits (and tears the group down) while rank 0 writes
    return distributed.share(world, final)


def experiment_info(t, final: dict[str, Any], best: dict[str, Any], exported: Path | None) -> dict[str, Any]:
    """experiment_info.json (Supervisely's layout): files, metrics, data fit, run facts."""
    import datetime

    checkpoints = sorted(p.name for p in (t.output / "checkpoints").glob("*.pt"))
    return {
        "experiment_name": f"{t.setup.variant} on {Path(t.run.data).name}",
        "framework_name": t.adapter.framework,
        "model_name": t.setup.variant,
        "task_type": t.adapter.task_type,
        "base_checkpoint": str(t.setup.init_weights) if t.setup.init_weights else None,
        "model_files": {"config": "model/config.json", "weights": f"model/{statelib.WEIGHTS}"},
        "checkpoints": [f"checkpoints/{name}" for name in checkpoints],
        "best_checkpoint": "best.pt",
        "export": {"ONNXRuntime": "export/best.onnx"} if exported else {},
        "model_meta": "model_meta.json",
        "hyperparameters": "hyperparameters.yaml",
        "hyperparameter_values": t.hp.to_dict(),
        "hyperparameter_sources": t.setup.sources,
        "artifacts_dir": str(t.output),
        "datetime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "evaluation_metrics": {**{k: final[k] for k in ("mAP", "AP50", "AP75", "precision", "recall", "f1",
                                                        "f1_conf", "max_dets")},
                               "coco100": {k: final["coco100"][k] for k in ("mAP", "AP50", "AP75")}},
        "dataset_fit": {**t.setup.fit, "classes": t.setup.data.split.get("classes", {}),
                        "untrained_classes": t.setup.data.split.get("untrained_classes", [])},
        "primary_metric": "mAP",
        "logs": {"type": "tensorboard", "link": "tensorboard/"},
        "device": str(t.device),
        "steps": t.step,
        "best_step": best["step"],
        "train_val_split": "train_val_split.json",
        "dataset_report": "dataset_report.json",
        "dataset": {"summary": t.setup.data.report.summary(),
                    "objects": t.setup.data.report.to_dict()["objects"],
                    "warnings": len(t.setup.data.report.warnings())},
        "train_size": len(t.train_set),
        "val_size": len(t.val_set),
        "distributed": {"world_size": t.world.size, "batch_size": t.hp.batch_size, "grad_accum": t.accum,
                        "global_batch": t.global_batch},
    }

