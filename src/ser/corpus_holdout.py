"""Scoring the leave-one-corpus-out protocol: each fold's model on the corpus it never heard.

Every run is scored twice on its tested corpus, with EmoBox's 4-class UA and the shared-class UA of
ser.cross_corpus:
- `batch`: the corpus standardized on its own statistics (or each of its speakers on theirs, as the
  model trained), labels unseen: what `ser predict --adapt` does over a folder of a user's recordings;
- `single`: each recording alone, standardized with the training corpora's statistics: what
  `ser predict` does on one file.
A repeat's score is the mean over its corpora; the metrics are the mean and spread over repeats, for
the whole and per corpus.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .adaptation import model_view, run_view
from .card import ModelCard
from .corpus import EMOTIONS
from .cross_corpus import cross_corpus_scores
from .inference import partition_logits

MODES = ("batch", "single")
IDENTITY = {"mean": [0.0], "std": [1.0]}  # features already standardized within their groups
SCORES = {"four_class_ua": ("four_class", "balanced_accuracy"), "shared_ua": ("shared", "balanced_accuracy"),
          "shared_accuracy": ("shared", "accuracy")}


def score_run(model, card: ModelCard, features: np.ndarray, index: pd.DataFrame, assignment: pd.DataFrame,
              device) -> tuple[dict, list[dict]]:
    """One run's scores on its tested corpus in both modes, and each clip's actual and batch-mode prediction."""
    scores, records = {}, []
    per = card.feature_recipe["standardize"]
    batch = model_view(features, index, assignment, card, per)
    if card.adaptation is None:  # trained on pooled statistics: the corpus on its own, as cross_corpus does
        batch = run_view(features, index, assignment, "corpus", per), IDENTITY
    views = {"batch": batch, "single": (features, card.standardization)}
    for mode in MODES:
        array, standardization = views[mode]
        rows, actual, logits = partition_logits(model, array, index, assignment, standardization, device)
        probabilities = torch.softmax(logits, dim=1).numpy()
        result = cross_corpus_scores(probabilities, [EMOTIONS[a] for a in actual])
        scores[mode] = {name: result[part][key] for name, (part, key) in SCORES.items()}
        scores[mode]["n"] = result["shared"]["n"]
        if mode == "batch":
            records = [{"clip_id": clip, "actual": EMOTIONS[a], "predicted": EMOTIONS[p]}
                       for clip, a, p in zip(index["clip_id"].iloc[rows], actual, logits.argmax(1).numpy())]
    return scores, records


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarize(scored: list[dict]) -> dict:
    """Mean and spread over repeats of each mode's scores: over every corpus (a repeat's mean over its
    corpora) and per corpus. `scored` holds one entry per run: repeat, corpus and each mode's scores."""
    frame = pd.DataFrame([{"repeat": run["repeat"], "corpus": run["corpus"], "mode": mode, **run[mode]}
                          for run in scored for mode in MODES])
    summary = {"repeats": int(frame["repeat"].nunique()), "corpora": {}}
    for mode in MODES:
        own = frame[frame["mode"] == mode]
        per_repeat = own.groupby("repeat")[list(SCORES)].mean()
        summary[mode] = {}
        for name in SCORES:
            summary[mode][name], summary[mode][f"{name}_std"] = _mean_std(per_repeat[name].tolist())
    for corpus in dict.fromkeys(run["corpus"] for run in scored):  # in fold order
        summary["corpora"][corpus] = {}
        for mode in MODES:
            own = frame[(frame["mode"] == mode) & (frame["corpus"] == corpus)]
            entry = {"n": int(own["n"].iloc[0])}
            for name in SCORES:
                entry[name], entry[f"{name}_std"] = _mean_std(own[name].tolist())
            summary["corpora"][corpus][mode] = entry
    return summary
