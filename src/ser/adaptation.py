"""Standardizing features within a group (a corpus, a speaker, a user's batch of recordings), labels unseen.

A voice, a microphone and a room move every feature of a recording. Standardizing each group of
recordings on its own mean and std takes much of that away, so a model trained on several corpora, each
standardized on its own statistics, learns what is left: the emotion. At test time the same is done over
a batch of the user's recordings. Only features are read, never a label.

Each group's statistics come from what the training side knows of it (a training corpus, or a corpus
tested in-corpus, from its training clips), or, for a group it has never heard (a left-out corpus, a
held-out speaker), from the group's own recordings, as a batch.

A model trained this way records in its card (`adaptation`):
- `within`: the groups it trained with (corpus or speaker);
- `prior`: the pooled statistics of the raw features it trained on, which stand in for a group's own
  statistics where a group has few recordings (`shrunk_statistics`), and alone for a single recording;
- `after`: the standardization it then applied (the pooled statistics of the group-standardized rows).
The card's `standardization` is `prior` followed by `after` in one step (`compose`), so a single
recording takes the same path as with any other model.
With `adaptation.single_view` the training clips also train as a single recording is scored (`prior`
then `after`, `single_recording_view`), so the model has met a corpus's offset from the pooled statistics
before it meets an unheard corpus's in a lone file.

A group of one emotion is the hard case: its own statistics then remove part of the emotion itself.
Shrinking a small group's statistics towards the prior (`prior_files`) limits what a few recordings
can do; benchmarks/adaptation_curve.py measures both mixed and one-emotion groups.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .card import ModelCard
from .rows import final_model_rows
from .standardization import fit_standardization

WITHIN = ("corpus", "speaker", "none")


def check_within(within: str) -> str:
    if within not in WITHIN:
        raise ValueError(f"adaptation.within is {within!r}; expected one of {WITHIN}")
    return within


def effective_within(within: str, assignment: pd.DataFrame) -> str:
    """The grouping a run trains with: `within`, except corpus on a training side of one corpus, where the
    pooled statistics are that corpus's already (RAVDESS alone keeps its results to the bit)."""
    check_within(within)
    training = assignment[assignment["partition"] != "test"]
    corpora = training["corpus"].nunique() if "corpus" in training else 1
    return "none" if within == "corpus" and corpora < 2 else within


def row_groups(index: pd.DataFrame, clips: pd.DataFrame, within: str) -> pd.Series:
    """Each cache row's group (its clip's `corpus` or `speaker` in `clips`), or NaN for a clip `clips` lacks."""
    check_within(within)
    return index["clip_id"].map(clips.drop_duplicates("clip_id").set_index("clip_id")[within])


def tested_rows(index: pd.DataFrame, assignment: pd.DataFrame) -> np.ndarray:
    """Whether each cache row's clip is on the test side of one run's `assignment`."""
    partition = index["clip_id"].map(assignment.set_index("clip_id")["partition"])
    return (partition == "test").to_numpy()


def run_view(features: np.ndarray, index: pd.DataFrame, assignment: pd.DataFrame, within: str, per: str) -> np.ndarray:
    """The features as one run's model sees them, standardized `within` groups (group_statistics) before the
    model's own standardization; the cache itself where `within` is none."""
    if check_within(within) == "none":
        return features
    return standardize_within_groups(features, index, row_groups(index, assignment, within), per,
                                     tested_rows(index, assignment))


def group_statistics(features: np.ndarray, index: pd.DataFrame, groups: pd.Series, per: str,
                     tested: np.ndarray | None = None) -> dict:
    """Each group's mean and std over its original clips (copy 0), as fit_standardization returns them.

    With `tested` (a boolean per cache row), a group's statistics come from its clips outside the test
    side where it has any (a corpus or speaker the training side knows), and from its tested clips only
    where it has none (one never heard: a batch adapted on itself)."""
    original = (index["copy"] == 0).to_numpy()
    tested = np.zeros(len(index), dtype=bool) if tested is None else np.asarray(tested, dtype=bool)
    statistics = {}
    for group in sorted(groups.dropna().unique()):
        own = (groups == group).to_numpy() & original
        known = own & ~tested
        statistics[group] = fit_standardization(features, np.flatnonzero(known if known.any() else own), per=per)
    return statistics


def _shape(statistic: np.ndarray, ndim: int, per: str) -> np.ndarray:
    """Statistics broadcast over a block of rows [n, *clip shape]."""
    if per == "element":
        return statistic[None]
    return statistic.reshape((1, -1) + (1,) * (ndim - 2))


def standardize_array(block: np.ndarray, statistics: dict, per: str) -> np.ndarray:
    mean = np.asarray(statistics["mean"], dtype=np.float32)
    std = np.asarray(statistics["std"], dtype=np.float32)
    return (np.asarray(block, dtype=np.float32) - _shape(mean, block.ndim, per)) / _shape(std, block.ndim, per)


def standardize_within_groups(features: np.ndarray, index: pd.DataFrame, groups: pd.Series, per: str,
                              tested: np.ndarray | None = None) -> np.ndarray:
    """A float32 copy of `features` with every row standardized on its group's statistics (a row without a
    group is left as it is: no run reads it); `tested` as group_statistics takes it."""
    adapted = np.asarray(features, dtype=np.float32).copy()
    for group, statistics in group_statistics(features, index, groups, per, tested).items():
        rows = np.flatnonzero((groups == group).to_numpy())
        adapted[rows] = standardize_array(features[rows], statistics, per)
    return adapted


def compose(first: dict, second: dict) -> dict:
    """One standardization equal to standardizing with `first`, then with `second` (same shapes)."""
    mean1, std1 = np.asarray(first["mean"], np.float64), np.asarray(first["std"], np.float64)
    mean2, std2 = np.asarray(second["mean"], np.float64), np.asarray(second["std"], np.float64)
    # ((x - m1) / s1 - m2) / s2 = (x - (m1 + m2 s1)) / (s1 s2)
    return {"mean": (mean1 + mean2 * std1).astype(np.float32).tolist(),
            "std": (std1 * std2).astype(np.float32).tolist()}


def shrunk_statistics(own: dict, prior: dict, files: int, prior_files: float) -> dict:
    """A group's statistics from `files` recordings, shrunk towards `prior` as if the prior were
    `prior_files` more recordings: means and variances are weighted by those counts."""
    if files < 1:
        raise ValueError("a group needs at least one recording")
    weight = files / (files + prior_files)
    mean_own, mean_prior = np.asarray(own["mean"], np.float64), np.asarray(prior["mean"], np.float64)
    var_own, var_prior = np.asarray(own["std"], np.float64) ** 2, np.asarray(prior["std"], np.float64) ** 2
    mean = weight * mean_own + (1 - weight) * mean_prior
    # The pooled second moment, so that a group far from the prior also widens the std.
    second = weight * (var_own + mean_own ** 2) + (1 - weight) * (var_prior + mean_prior ** 2)
    return {"mean": mean.astype(np.float32).tolist(),
            "std": np.sqrt(np.maximum(second - mean ** 2, 1e-12)).astype(np.float32).tolist()}


def adapted_standardization(card: ModelCard, own: dict, files: int, prior_files: float | None = None) -> dict:
    """What a model standardizes a group of `files` recordings with, from the group's `own` statistics:
    for a model trained within groups, the shrunk group statistics then the card's `after`; for any other
    model, the group's own statistics in place of the training clips' (cross_corpus's `corpus`)."""
    adaptation = card.adaptation
    if not adaptation:
        return own
    weight = adaptation["prior_files"] if prior_files is None else prior_files
    return compose(shrunk_statistics(own, adaptation["prior"], files, weight), adaptation["after"])


def training_prior(features: np.ndarray, index: pd.DataFrame, assignment: pd.DataFrame, recipe, per: str) -> dict:
    """The pooled raw statistics of the rows a run's kept model trains on (its `recipe`'s, ser.rows.final_model_rows):
    the card's `prior`, what a lone recording is standardized with."""
    return fit_standardization(features, np.sort(final_model_rows(index, assignment, recipe)), per=per)


def record_adaptation(card: ModelCard, features: np.ndarray, index: pd.DataFrame, assignment: pd.DataFrame,
                      recipe, within: str, prior_files: float, per: str) -> ModelCard:
    """`card` of a model trained on `run_view(..., within, per)`, with its `adaptation` and, as its
    `standardization`, the prior then its own: a lone recording has no group, so the raw statistics of
    the rows the model trained on (its `recipe`'s, ser.rows.final_model_rows) stand in."""
    if within == "none":
        return card
    prior = training_prior(features, index, assignment, recipe, per)
    adaptation = {"within": within, "prior": prior, "after": card.standardization, "prior_files": prior_files}
    return dataclasses.replace(card, adaptation=adaptation, standardization=compose(prior, card.standardization))


def single_recording_view(features: np.ndarray, index: pd.DataFrame, assignment: pd.DataFrame, recipe,
                          per: str) -> np.ndarray:
    """The cache as a model trained within groups scores one recording: standardized on the pooled raw
    statistics of the rows it trains on (the card's `prior`, record_adaptation), whatever the recording's group.

    Trained on beside the group view (`adaptation.single_view`), the training clips then also carry their
    corpus's offset from the pooled statistics, as a lone recording of an unheard corpus does."""
    return standardize_array(features, training_prior(features, index, assignment, recipe, per), per)


def training_views(features: np.ndarray, index: pd.DataFrame, assignment: pd.DataFrame, within: str, recipe,
                   per: str, single_view: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(the view a run's model trains and is selected on, a second view its training rows also train on, or
    None): `run_view`, and with `single_view` the single recording's view where the run trains within groups
    (without groups it is the first view already)."""
    view = run_view(features, index, assignment, within, per)
    if not single_view or within == "none":
        return view, None
    return view, single_recording_view(features, index, assignment, recipe, per)


def model_view(features: np.ndarray, index: pd.DataFrame, assignment: pd.DataFrame, card: ModelCard,
               per: str) -> tuple[np.ndarray, dict]:
    """(features, standardization) as a run's model sees its test clips: within its groups then its own
    `after` step for a model trained within groups; the cache and its training statistics otherwise."""
    adaptation = card.adaptation
    if not adaptation:
        return features, card.standardization
    return run_view(features, index, assignment, adaptation["within"], per), adaptation["after"]
