"""Train/validation/test assignment of clips. Everything downstream selects by clip.

Augmented copies are keyed by the clip they were made from, so a copy is used
for training only when its source clip is assigned `train` here: a test or
validation clip never reaches training, in any form.

The result has one row per (repeat, fold, clip). `random` and `actor_holdout`
have a single fold; `actor_kfold` has one per group of held-out actors, and in
each fold a clip is `train`, `validation`, `test` or `excluded` (a held-out
actor's clip outside the tested subset, or a training actor's clip outside the
trained subset: neither side may use it).

`repeats` draws the whole protocol again: repeat r uses the seed `seed + r - 1`
for the random 80/20 and every validation draw (and training uses `train.seed
+ r - 1`), so a result is a distribution over N repeats, not one draw.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

PROTOCOLS = ("random", "actor_holdout", "actor_kfold")
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
    """One fold: a row per clip of the subset with clip_id, actor, emotion, vocal_channel, fold (1), partition."""
    clips = select_subset(manifest, subset)[["clip_id", "actor", "emotion", "vocal_channel"]]
    clips = clips.sort_values("clip_id", ignore_index=True)  # order-independent of the input
    if protocol == "actor_kfold":
        raise ValueError("actor_kfold has several folds: use assign_folds (or make_split)")
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
    return clips.assign(fold=1, partition=partition)


def actor_folds(actors, folds) -> list[list[int]]:
    """`folds` as a list of actor groups: given as such, or as a number k of contiguous groups of sorted actors.

    Contiguous groups keep folds gender-balanced on RAVDESS (odd actors are male, even female).
    """
    actors = sorted(int(a) for a in actors)
    if isinstance(folds, int):
        if not 2 <= folds <= len(actors):
            raise ValueError(f"split.actor_kfold.folds is {folds}; expected 2 to {len(actors)} or a list of actor lists")
        size, extra = divmod(len(actors), folds)
        groups, start = [], 0
        for k in range(folds):
            end = start + size + (1 if k < extra else 0)
            groups.append(actors[start:end])
            start = end
        return groups
    groups = [sorted(int(a) for a in group) for group in folds]
    named = [a for group in groups for a in group]
    unknown = sorted(set(named) - set(actors))
    repeated = sorted({a for a in named if named.count(a) > 1})
    if len(groups) < 2 or unknown or repeated or any(not group for group in groups):
        raise ValueError(f"split.actor_kfold.folds must be at least 2 non-empty groups of distinct corpus actors "
                         f"(unknown: {unknown}, in two folds: {repeated})")
    return groups


def assign_folds(manifest: pd.DataFrame, folds, *, subset: str = "all", train_subset: str = "all",
                 test_subset: str = "all", validation_fraction: float = 0.1, seed: int = 42) -> pd.DataFrame:
    """Actor k-fold: in fold k the actors of group k are tested, the other actors train (and validate)."""
    clips = select_subset(manifest, subset)[["clip_id", "actor", "emotion", "vocal_channel"]]
    clips = clips.sort_values("clip_id", ignore_index=True)
    trainable = clips["clip_id"].isin(select_subset(clips, train_subset)["clip_id"])
    testable = clips["clip_id"].isin(select_subset(clips, test_subset)["clip_id"])
    per_fold = []
    for fold, held_out in enumerate(actor_folds(clips["actor"].unique(), folds), start=1):
        held = clips["actor"].isin(held_out)
        partition = pd.Series("excluded", index=clips.index)
        partition[held & testable] = "test"
        partition[~held & trainable] = "train"
        if validation_fraction > 0:
            # Drawn from the training actors only, so model selection never sees the held-out actors.
            chosen = stratified_holdout(clips[partition == "train"], validation_fraction, seed + fold)
            partition[clips["clip_id"].isin(chosen)] = "validation"
        per_fold.append(clips.assign(fold=fold, partition=partition))
    return pd.concat(per_fold, ignore_index=True)


def make_split(manifest: pd.DataFrame, params: dict) -> pd.DataFrame:
    """The split that the `split` section of params.yaml describes, `repeats` times over."""
    repeats = params.get("repeats", 1)
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"split.repeats is {repeats!r}; expected a whole number of at least 1")
    drawn = []
    for repeat in range(1, repeats + 1):
        seed = repeat_seed(params["seed"], repeat)
        if params["protocol"] == "actor_kfold":
            kfold = params["actor_kfold"]
            one = assign_folds(manifest, kfold["folds"], subset=params["subset"], train_subset=kfold["train_subset"],
                               test_subset=kfold["test_subset"], validation_fraction=params["validation_fraction"],
                               seed=seed)
        else:
            one = assign_partitions(manifest, params["protocol"], subset=params["subset"],
                                    test_fraction=params["test_fraction"], test_actors=params["test_actors"],
                                    validation_fraction=params["validation_fraction"], seed=seed)
        drawn.append(one.assign(repeat=repeat))
    split = pd.concat(drawn, ignore_index=True)
    return split[["repeat", *[c for c in split.columns if c != "repeat"]]]


def repeat_seed(seed: int, repeat: int) -> int:
    """The seed of repeat `repeat` (1-based) for a base seed from params (split.seed, train.seed)."""
    return seed + repeat - 1


def runs_of(split: pd.DataFrame) -> dict[tuple[int, int], pd.DataFrame]:
    """Each (repeat, fold)'s one-row-per-clip assignment, in repeat then fold order."""
    return {(int(repeat), int(fold)): assignment.reset_index(drop=True)
            for (repeat, fold), assignment in split.groupby(["repeat", "fold"])}


def run_names(runs) -> dict[tuple[int, int], str]:
    """Each run's folder under models/ and DVCLive prefix: "" alone, `fold_2`, `repeat_3` or `repeat_3/fold_2`."""
    several_repeats = len({repeat for repeat, _ in runs}) > 1
    several_folds = len({fold for _, fold in runs}) > 1
    return {(repeat, fold): "/".join([f"repeat_{repeat}"] * several_repeats + [f"fold_{fold}"] * several_folds)
            for repeat, fold in runs}
