"""Test-set metrics, every one computed here and only here, and the confusion-matrix plot."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             recall_score)

from .corpus import EMOTIONS
from .io import atomic_path


def classification_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict:
    """actual/predicted are class indices into EMOTIONS; classes absent from the test set score 0 recall."""
    labels = list(range(len(EMOTIONS)))
    recall = recall_score(actual, predicted, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(actual, predicted)),
        "macro_f1": float(f1_score(actual, predicted, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(actual, predicted, labels=labels, average="weighted", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(actual, predicted)),
        "recall": {name: float(value) for name, value in zip(EMOTIONS, recall)},
        "n_test": int(len(actual)),
        "test_counts": {name: int((actual == i).sum()) for i, name in enumerate(EMOTIONS)},
    }


SUMMARIZED = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")


def cross_validation_summary(per_fold: list[dict], pooled: dict) -> dict:
    """Mean and sample standard deviation (ddof=1) over folds of the headline metrics, the folds, and the pooled metrics.

    The means keep the single-split key names (`accuracy`, `macro_f1`, ...), so
    `dvc metrics diff` and the drift check read both kinds of run the same way.
    """
    summary = {}
    for key in SUMMARIZED:
        values = np.array([fold[key] for fold in per_fold], dtype=np.float64)
        summary[key] = float(values.mean())
        summary[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    summary["n_test"] = pooled["n_test"]
    summary["folds"] = per_fold
    summary["pooled"] = pooled
    return summary


def describe_machine(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def current_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def result_record(metrics: dict, train_summary: dict) -> dict:
    """The metrics kept per (protocol, arch) under reports/results/, with what produced them.

    `commit` is the checked-out commit the run started from (for `dvc exp run`, the experiment's baseline).
    """
    return {**metrics, "machine": describe_machine(metrics["device"]), "commit": current_commit(),
            "train_seconds": train_summary.get("train_seconds")}


def plot_confusion(actual: np.ndarray, predicted: np.ndarray, path: str | Path, title: str = "") -> None:
    """Counts beside row-normalized recall, as one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion_matrix(actual, predicted, labels=range(len(EMOTIONS)))
    normalized = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(1, 2, figsize=(15, 6.5), constrained_layout=True)
    for axis, matrix, name, fmt in ((axes[0], counts, "counts", "d"),
                                    (axes[1], normalized, "row-normalized (recall)", ".2f")):
        image = axis.imshow(matrix, cmap="Blues", vmin=0)
        axis.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
        axis.set_yticks(range(len(EMOTIONS)), EMOTIONS)
        axis.set_xlabel("predicted")
        axis.set_ylabel("actual")
        axis.set_title(name)
        threshold = matrix.max() / 2 if matrix.max() else 1
        for i in range(len(EMOTIONS)):
            for j in range(len(EMOTIONS)):
                axis.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", fontsize=8,
                          color="white" if matrix[i, j] > threshold else "black")
        figure.colorbar(image, ax=axis, shrink=0.8)
    if title:
        figure.suptitle(title)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110)
    plt.close(figure)
