"""Which rows of the feature cache each partition, and each trained model, uses.

A copy (copy > 0) is selected only through its source clip's partition, so no copy of a
validation or test clip can reach training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .corpora import RAVDESS
from .corpus import EMOTIONS


def partition_rows(index: pd.DataFrame, assignments: pd.DataFrame, copies: bool = True) -> dict[str, np.ndarray]:
    """Feature-cache rows per partition: training takes a clip and its copies (`copies`); the others, originals only."""
    partition = index["clip_id"].map(assignments.set_index("clip_id")["partition"])
    original = index["copy"] == 0
    return {
        "train": np.flatnonzero((partition == "train") & (original | copies)),
        "validation": np.flatnonzero((partition == "validation") & original),
        "test": np.flatnonzero((partition == "test") & original),
    }


def clip_values(index: pd.DataFrame, rows: np.ndarray, assignments: pd.DataFrame, column: str) -> pd.Series:
    """A column of the split (emotion, actor, ...) for each of the cache `rows`, through its clip."""
    return index["clip_id"].iloc[rows].map(assignments.set_index("clip_id")[column])


def labels_for(index: pd.DataFrame, rows: np.ndarray, assignments: pd.DataFrame) -> np.ndarray:
    emotion = clip_values(index, rows, assignments, "emotion")
    return emotion.map({name: i for i, name in enumerate(EMOTIONS)}).to_numpy(dtype=np.int64, copy=True)


def refit_rows(index: pd.DataFrame, assignments: pd.DataFrame, copies: bool) -> np.ndarray:
    """Training and validation clips (with their copies when `copies`): never a test clip or its copies."""
    merged = assignments.assign(partition=assignments["partition"].replace({"validation": "train"}))
    return partition_rows(index, merged, copies=copies)["train"]


def final_model_rows(index: pd.DataFrame, assignments: pd.DataFrame, recipe) -> np.ndarray:
    """The cache rows that the kept model trained on under `recipe` (an arch's TrainRecipe): the refit's
    training and validation clips, or the training clips alone, with their copies as the recipe says."""
    if recipe.refit:
        return refit_rows(index, assignments, copies=recipe.augmented_copies)
    return partition_rows(index, assignments, copies=recipe.augmented_copies)["train"]


def speaker_ids(clips: pd.DataFrame) -> pd.Series:
    """Each clip's speaker as the manifest names it ("<corpus>/<id>"): its `speaker`, or, in a RAVDESS-only
    split (which has no speaker column), "ravdess/<actor, two digits>"."""
    speakers = clips["speaker"] if "speaker" in clips else pd.Series(None, index=clips.index, dtype=object)
    actors = clips["actor"] if "actor" in clips else pd.Series(None, index=clips.index, dtype=object)
    return pd.Series([speaker if isinstance(speaker, str) else
                      (f"{RAVDESS}/{int(actor):02d}" if pd.notna(actor) else None)
                      for speaker, actor in zip(speakers, actors)], index=clips.index, dtype=object)


def trained_on(index: pd.DataFrame, assignments: pd.DataFrame, rows: np.ndarray) -> dict:
    """What the cache `rows` (a model's, see `final_model_rows`) hold, for its card: their corpora, their
    speakers, their original clips per emotion (in EMOTIONS' order) and in all, and their augmented copies."""
    chosen = index.iloc[np.asarray(rows)]
    original = chosen["clip_id"][chosen["copy"] == 0]
    clips = assignments.drop_duplicates("clip_id").set_index("clip_id").loc[original]
    corpora = clips["corpus"].dropna().unique() if "corpus" in clips else [RAVDESS]  # a split before the column
    per_emotion = clips["emotion"].value_counts()
    return {"corpora": sorted(str(name) for name in corpora),
            "speakers": sorted(speaker_ids(clips).dropna().unique().tolist()),
            "clips_per_emotion": {emotion: int(per_emotion.get(emotion, 0)) for emotion in EMOTIONS},
            "clips": int(len(clips)),
            "augmented_copies": int((chosen["copy"] > 0).sum())}
