"""Test-set metrics, every one computed here and only here, and the confusion-matrix plot."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch
from scipy import stats
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
def two_sided_t(confidence: float, samples: int) -> float:
    """Student's t quantile bounding a two-sided `confidence` for a spread estimated from `samples` values."""
    return float(stats.t.ppf(0.5 + confidence / 2, samples - 1))


def mean_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean of `values` (a single value gives a zero-width interval)."""
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean
    half = two_sided_t(confidence, len(values)) * values.std(ddof=1) / np.sqrt(len(values))
    return mean - float(half), mean + float(half)


def repeated_summary(runs: list[dict], pooled: dict) -> dict:
    """The headline metrics of one experiment: their mean, spread and interval over repeats.

    `runs` holds one entry per (repeat, fold) with the SUMMARIZED metrics. A
    repeat scores the mean over its folds (as EmoBox averages its folds); the
    headline is the mean over repeats, `<metric>_std` the sample standard
    deviation over repeats (what another draw of seeds would move), and
    `<metric>_ci95` the 95 % interval of that mean. With several folds,
    `<metric>_fold_std` is the spread over folds (speakers) of the per-fold
    means. The means keep the single-run key names, so `dvc metrics diff` and
    the drift check read every kind of run the same way.
    """
    repeats = sorted({run["repeat"] for run in runs})
    folds = sorted({run["fold"] for run in runs})
    summary = {"repeats": len(repeats), "folds_per_repeat": len(folds)}
    per_repeat = [{"repeat": repeat} for repeat in repeats]
    for key in SUMMARIZED:
        by_repeat = np.array([np.mean([run[key] for run in runs if run["repeat"] == repeat]) for repeat in repeats])
        for row, value in zip(per_repeat, by_repeat):
            row[key] = float(value)
        summary[key] = float(by_repeat.mean())
        summary[f"{key}_std"] = float(by_repeat.std(ddof=1)) if len(by_repeat) > 1 else 0.0
        low, high = mean_interval(by_repeat)
        summary[f"{key}_ci95"] = {"low": low, "high": high}
        if len(folds) > 1:
            by_fold = np.array([np.mean([run[key] for run in runs if run["fold"] == fold]) for fold in folds])
            summary[f"{key}_fold_std"] = float(by_fold.std(ddof=1))
    summary["n_test"] = int(sum(run["n_test"] for run in runs if run["repeat"] == repeats[0]))  # per repeat
    summary["recall"] = pooled.get("recall")  # per class, pooled over every run
    summary["per_repeat"] = per_repeat
    summary["runs"] = runs
    summary["pooled"] = pooled
    return summary


def cpu_model() -> str:
    """The CPU's model name (e.g. "AMD EPYC 7B13"), which decides its code paths; the architecture where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return f"{platform.machine()} CPU"


def describe_machine(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{cpu_model()}, {os.cpu_count()} cores"


def current_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def code_record() -> dict | None:
    """The commit the code was checked out at (`current_commit`), and whether
    the code (src/, stages/) held changes not in it; None outside a git repository. Only the code counts: a
    `dvc repro` rewrites dvc.lock and `dvc exp run` params.yaml before train runs, and the params are on the
    card already. DVC re-runs train for a changed dep or param alone, never for a new commit, so the record
    changes no re-run decision; a forced re-run at another commit gives other model bytes (evaluate then
    re-runs), and a run restored from DVC's run cache keeps the card, commit included, that it was trained with."""
    commit = current_commit()
    if commit is None:
        return None
    try:  # --no-optional-locks: reading the tree must not take git's index lock from anyone
        changes = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--", ":/src", ":/stages"],
                                 capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"id": commit, "uncommitted_code": None}
    return {"id": commit, "uncommitted_code": bool(changes.strip())}


def result_record(metrics: dict, train_summary: dict | None = None, device: str | None = None) -> dict:
    """The metrics kept per (protocol, arch) under reports/results/, with what produced them: the machine
    (`device`, or the metrics' own), the commit and, from the train stage's summary, its time.

    `commit` is the checked-out commit the run started from (for `dvc exp run`, the experiment's baseline).
    """
    record = {**metrics, "machine": describe_machine(device or metrics["device"]), "commit": current_commit()}
    if train_summary is not None:
        record["train_seconds"] = train_summary.get("train_seconds")
    return record


def plot_confusion(actual: np.ndarray, predicted: np.ndarray, path: str | Path, title: str = "",
                   labels=EMOTIONS, predicted_labels=None) -> None:
    """Counts beside row-normalized recall, as one PNG. `actual` indexes `labels`, `predicted` indexes
    `predicted_labels` (default: the same; another corpus's model may predict classes the corpus lacks)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predicted_labels = list(labels if predicted_labels is None else predicted_labels)
    labels = list(labels)
    counts = confusion_matrix(actual, predicted, labels=range(len(predicted_labels)))[:len(labels)]
    normalized = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(1, 2, figsize=(15, 6.5), constrained_layout=True)
    for axis, matrix, name, fmt in ((axes[0], counts, "counts", "d"),
                                    (axes[1], normalized, "row-normalized (recall)", ".2f")):
        image = axis.imshow(matrix, cmap="Blues", vmin=0)
        axis.set_xticks(range(len(predicted_labels)), predicted_labels, rotation=45, ha="right")
        axis.set_yticks(range(len(labels)), labels)
        axis.set_xlabel("predicted")
        axis.set_ylabel("actual")
        axis.set_title(name)
        threshold = matrix.max() / 2 if matrix.max() else 1
        for i in range(len(labels)):
            for j in range(len(predicted_labels)):
                axis.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", fontsize=8,
                          color="white" if matrix[i, j] > threshold else "black")
        figure.colorbar(image, ax=axis, shrink=0.8)
    if title:
        figure.suptitle(title)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110)
    plt.close(figure)
