"""Train/validation/test assignment of clips. Everything downstream selects by clip.

Augmented copies are keyed by the clip they were made from, so a copy is used
for training only when its source clip is assigned `train` here: a test or
validation clip never reaches training, in any form.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

PROTOCOLS = ("random", "actor_holdout")
SUBSETS = ("all", "speech", "song")


def select_subset(manifest: pd.DataFrame, subset: str) -> pd.DataFrame:
    if subset not in SUBSETS:
        raise ValueError(f"split.subset is {subset!r}; expected one of {SUBSETS}")
    if subset == "all":
        return manifest
    return manifest[manifest["vocal_channel"] == subset]


def stratified_holdout(clips: pd.DataFrame, fraction: float, seed: int) -> set[str]:
    """Clip ids of a `fraction` of `clips`, stratified by emotion, at least one per emotion."""
    classes = clips["emotion"].nunique()
    size = min(max(round(fraction * len(clips)), classes), len(clips) - classes)
    _, held_out = train_test_split(clips["clip_id"], test_size=size, stratify=clips["emotion"],
                                   random_state=seed)
    return set(held_out)


def assign_partitions(manifest: pd.DataFrame, protocol: str, *, subset: str = "all",
                      test_fraction: float = 0.2, test_actors=(), validation_fraction: float = 0.1,
                      seed: int = 42) -> pd.DataFrame:
    """Return one row per clip of the subset: clip_id, actor, emotion, partition."""
    clips = select_subset(manifest, subset)[["clip_id", "actor", "emotion", "vocal_channel"]]
    clips = clips.sort_values("clip_id", ignore_index=True)  # order-independent of the input
    if protocol == "random":
        test = stratified_holdout(clips, test_fraction, seed)
    elif protocol == "actor_holdout":
        unknown = set(test_actors) - set(clips["actor"])
        if not test_actors or unknown:
            raise ValueError(f"split.test_actors {list(test_actors)} must name actors in the corpus "
                             f"(unknown: {sorted(unknown)})")
        test = set(clips.loc[clips["actor"].isin(test_actors), "clip_id"])
    else:
        raise ValueError(f"split.protocol is {protocol!r}; expected one of {PROTOCOLS}")

    partition = clips["clip_id"].map(lambda c: "test" if c in test else "train")
    training = clips[partition == "train"]
    if validation_fraction > 0:
        # Model selection must never see the test side: validation comes out of training only.
        partition[clips["clip_id"].isin(stratified_holdout(training, validation_fraction, seed))] = "validation"
    return clips.assign(partition=partition)
