"""The run report in `report/`: metrics.json and matplotlib plots (loss, mAP, PR curve)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cvatflow.training.state import write_json


def write(folder: Path, history: list[dict[str, Any]], final: dict[str, Any], best_step: int | None = None) -> None:
    """metrics.json (final metrics of the best model, per-class AP, history) and PNG plots."""
    import matplotlib

    matplotlib.use("Agg")  # no display in a container
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in final.items() if k != "pr_curve"}
    if "segm" in summary:
        summary["segm"] = {k: v for k, v in summary["segm"].items() if k != "pr_curve"}
    write_json(folder / "metrics.json", {**summary, "best_step": best_step, "history": history})

    train = [h for h in history if h["type"] == "train"]
    val = [h for h in history if h["type"] == "val"]
    if train:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([h["step"] for h in train], [h["loss"] for h in train], label="train loss")
        ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.set_title("Training loss"), ax.legend()
        fig.tight_layout(), fig.savefig(folder / "loss.png", dpi=100), plt.close(fig)
    if val:
        fig, ax = plt.subplots(figsize=(6, 4))
        for key in ("mAP", "AP50", "AP75", "segm_mAP"):
            if key in val[0]:
                ax.plot([h["step"] for h in val], [h[key] for h in val], marker="o", label=key)
        ax.set_xlabel("step"), ax.set_ylabel("AP"), ax.set_ylim(0, 1), ax.set_title("Validation"), ax.legend()
        fig.tight_layout(), fig.savefig(folder / "map.png", dpi=100), plt.close(fig)
    curve = final.get("pr_curve") or {}
    if curve.get("recall"):
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(curve["recall"], curve["precision"], label="bbox, IoU 0.5")
        if final.get("f1"):
            ax.scatter([final["recall"]], [final["precision"]], color="red", zorder=3,
                       label=f"F1 {final['f1']:.2f} at conf {final['f1_conf']:.2f}")
        ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
        ax.set_title("Precision-recall (mean over classes)"), ax.legend(loc="lower left")
        fig.tight_layout(), fig.savefig(folder / "pr_curve.png", dpi=100), plt.close(fig)
