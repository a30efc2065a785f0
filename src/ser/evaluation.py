"""Test-set metrics, every one computed here and only here, and the confusion-matrix plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
