"""Train/validation/test assignment of clips. Everything downstream selects by clip.

Augmented copies are keyed by the clip they were made from, so a copy is used
for training only when its source clip is assigned `train` here: a test or
validation clip never reaches training, in any form.

The result has one row per (repeat, fold, clip). `random` and `actor_holdout`
have a single fold; `actor_kfold` has one per group of held-out actors, and in
each fold a clip is `train`, `validation`, `test` or `excluded` (a held-out
actor's clip outside the tested subset, or a training actor's clip outside the
trained subset: neither side may use it).

Model selection (best epoch, learning-rate schedule) uses the `validation`
clips, always drawn from the training side. Under `random` they are a
stratified share of the training clips; under the speaker-independent
protocols (`validation_by: actor`) they are every tested-subset clip of a few
training actors, who then do not train, so that the epoch is chosen on voices
the model has never heard, as the test measures it.

`repeats` draws the whole protocol again: repeat r uses the seed `seed + r - 1`
for the random 80/20 and every validation draw (and training uses `train.seed
+ r - 1`), so a result is a distribution over N repeats, not one draw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .corpora import RAVDESS

if TYPE_CHECKING:
    from .config import Split

PROTOCOLS = ("random", "actor_holdout", "actor_kfold", "leave_one_corpus_out")
SUBSETS = ("all", "speech", "song")
SPLIT_COLUMNS = ["clip_id", "actor", "emotion", "vocal_channel", "fold", "partition"]
CORPUS_COLUMNS = ["corpus", "speaker"]


def clip_columns(manifest: pd.DataFrame) -> list[str]:
    """What the split reads of each clip: its id, actor, emotion, channel, and gender where known."""
    return ["clip_id", "actor", "emotion", "vocal_channel", *(["gender"] if "gender" in manifest else [])]


def ravdess_clips(manifest: pd.DataFrame) -> pd.DataFrame:
    """The RAVDESS rows of a manifest (all of an older one without `corpus`), actors as plain integers:
    the in-corpus protocols (random, actor_holdout, actor_kfold) split these alone."""
    if "corpus" in manifest:
        manifest = manifest[manifest["corpus"] == RAVDESS]
    return manifest.astype({"actor": "int64"})


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


VALIDATION_BY = ("actor", "clip")


def validation_actors(clips: pd.DataFrame, fraction: float, seed: int, column: str = "actor") -> list:
    """`fraction` of the actors (or other speakers: `column`) of `clips` (at least one, never all), drawn
    with `seed`, as evenly between genders as the count allows (where the clips say the gender)."""
    actors = clips.drop_duplicates(column).sort_values(column)
    count = min(max(1, round(fraction * len(actors))), len(actors) - 1)
    if count < 1:
        raise ValueError(f"validation by actor needs at least two training speakers (of {column} "
                         f"{sorted(actors[column].astype(str))})")
    as_value = int if column == "actor" else str
    rng = np.random.default_rng(seed)
    if "gender" not in actors:
        return sorted(as_value(a) for a in rng.choice(actors[column].to_numpy(), size=count, replace=False))
    # Alternate the genders in a shuffled order of each, so the count splits as evenly as it can.
    queues = [list(rng.permutation(group[column].to_numpy())) for _, group in actors.groupby("gender")]
    chosen = []
    while len(chosen) < count:
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(as_value(queue.pop(0)))
    return sorted(chosen)


def hold_out_validation(clips: pd.DataFrame, partition: pd.Series, validation_fraction: float, seed: int,
                        by: str, tested: pd.Series | None = None) -> pd.Series:
    """`partition` with some `train` clips turned `validation` (model selection only), drawn from
    the training side: a stratified share of its clips (`by: clip`), or the clips of some of its
    actors (`by: actor`), of which those outside the tested subset (`tested`) are excluded."""
    if by not in VALIDATION_BY:
        raise ValueError(f"split.validation_by is {by!r}; expected one of {VALIDATION_BY}")
    partition = partition.copy()
    training = clips[partition == "train"]
    if validation_fraction <= 0:
        return partition
    if by == "clip":
        partition[clips["clip_id"].isin(stratified_holdout(training, validation_fraction, seed))] = "validation"
        return partition
    held = clips["actor"].isin(validation_actors(training, validation_fraction, seed)) & (partition == "train")
    tested = pd.Series(True, index=clips.index) if tested is None else tested
    partition[held & tested] = "validation"
    partition[held & ~tested] = "excluded"
    return partition


def assign_partitions(manifest: pd.DataFrame, protocol: str, *, subset: str = "all",
                      test_fraction: float = 0.2, test_actors=(), validation_fraction: float = 0.1,
                      validation_by: str = "actor", seed: int = 42) -> pd.DataFrame:
    """One fold: a row per clip of the subset with clip_id, actor, emotion, vocal_channel, fold (1), partition.

    `validation_by` applies to `actor_holdout`; `random` shares actors between train and test, and
    validates on a share of the training clips.
    """
    clips = select_subset(manifest, subset)[clip_columns(manifest)]
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
    # Model selection must never see the test side: validation comes out of training only.
    partition = hold_out_validation(clips, partition, validation_fraction, seed,
                                    by="clip" if protocol == "random" else validation_by)
    return clips.assign(fold=1, partition=partition)[SPLIT_COLUMNS]


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
                 test_subset: str = "all", validation_fraction: float = 0.1, validation_by: str = "actor",
                 seed: int = 42) -> pd.DataFrame:
    """Actor k-fold: in fold k the actors of group k are tested, the other actors train (and validate)."""
    clips = select_subset(manifest, subset)[clip_columns(manifest)]
    clips = clips.sort_values("clip_id", ignore_index=True)
    trainable = clips["clip_id"].isin(select_subset(clips, train_subset)["clip_id"])
    testable = clips["clip_id"].isin(select_subset(clips, test_subset)["clip_id"])
    per_fold = []
    for fold, held_out in enumerate(actor_folds(clips["actor"].unique(), folds), start=1):
        held = clips["actor"].isin(held_out)
        partition = pd.Series("excluded", index=clips.index)
        partition[held & testable] = "test"
        partition[~held & trainable] = "train"
        # Drawn from the training actors only, so model selection never sees the held-out actors;
        # by actor, the validation actors' clips are those the test side would use (test_subset).
        partition = hold_out_validation(clips, partition, validation_fraction, seed + fold, by=validation_by,
                                        tested=testable)
        per_fold.append(clips.assign(fold=fold, partition=partition)[SPLIT_COLUMNS])
    return pd.concat(per_fold, ignore_index=True)


def assign_corpus_folds(manifest: pd.DataFrame, corpora, *, subset: str = "speech", validation_fraction: float = 0.1,
                        seed: int = 42) -> pd.DataFrame:
    """Leave one corpus out: in fold k the clips of `corpora[k - 1]` are tested and every other listed corpus
    trains. Validation (model selection) is a `validation_fraction` of each training corpus's speakers, drawn
    apart per corpus (RAVDESS's half of each gender), so the epoch is chosen on unheard voices of the
    training corpora and never on the tested one. `subset` selects RAVDESS's clips (the others are speech)."""
    if "corpus" not in manifest:
        raise ValueError("leave_one_corpus_out needs a manifest with a corpus column (re-run prepare)")
    corpora = list(corpora)
    unknown = sorted(set(corpora) - set(manifest["corpus"]))
    if len(corpora) < 2 or unknown or len(set(corpora)) != len(corpora):
        raise ValueError(f"split.leave_one_corpus_out.corpora {corpora}: give at least two distinct corpora of the "
                         f"manifest (unknown: {unknown}; the manifest has {sorted(manifest['corpus'].unique())})")
    chosen = manifest[manifest["corpus"].isin(corpora)]
    chosen = pd.concat([select_subset(chosen[chosen["corpus"] == RAVDESS], subset),
                        chosen[chosen["corpus"] != RAVDESS]])
    clips = chosen[clip_columns(manifest) + CORPUS_COLUMNS].sort_values("clip_id", ignore_index=True)
    per_fold = []
    for fold, held_out in enumerate(corpora, start=1):
        tested = clips["corpus"] == held_out
        partition = pd.Series("train", index=clips.index).where(~tested, "test")
        if validation_fraction > 0:
            for number, corpus in enumerate(c for c in corpora if c != held_out):
                own = clips[clips["corpus"] == corpus]
                columns = ["speaker", *(["gender"] if corpus == RAVDESS and "gender" in own else [])]
                held = validation_actors(own[columns], validation_fraction, seed + 100 * fold + number,
                                         column="speaker")
                partition[clips["speaker"].isin(held)] = "validation"
        per_fold.append(clips.assign(fold=fold, partition=partition)[SPLIT_COLUMNS + CORPUS_COLUMNS])
    return pd.concat(per_fold, ignore_index=True)


def with_training_corpora(assignment: pd.DataFrame, manifest: pd.DataFrame, corpora) -> pd.DataFrame:
    """An in-corpus `assignment` (RAVDESS's clips) with every clip of `corpora` added to each of its folds'
    training side; RAVDESS's own rows, and so its validation and test clips, are unchanged."""
    unknown = sorted(set(corpora) - set(manifest.get("corpus", pd.Series(dtype=str))) | ({RAVDESS} & set(corpora)))
    if unknown:
        raise ValueError(f"split.also_train_on names {unknown}: give corpora of prepare.corpora other than ravdess")
    added = manifest[manifest["corpus"].isin(corpora)]
    added = added[clip_columns(manifest) + CORPUS_COLUMNS].sort_values("clip_id", ignore_index=True)
    ravdess = assignment.assign(corpus=RAVDESS, speaker=[f"{RAVDESS}/{int(a):02d}" for a in assignment["actor"]])
    folds = [pd.concat([ravdess[ravdess["fold"] == fold],
                        added.assign(fold=fold, partition="train")[SPLIT_COLUMNS + CORPUS_COLUMNS]], ignore_index=True)
             for fold in sorted(assignment["fold"].unique())]
    return pd.concat(folds, ignore_index=True)


def make_split(manifest: pd.DataFrame, params: Split) -> pd.DataFrame:
    """The split that the `split` section of params.yaml describes, `repeats` times over."""
    original = manifest
    if params.protocol != "leave_one_corpus_out":
        manifest = ravdess_clips(manifest)
    drawn = []
    for repeat in range(1, params.repeats + 1):
        seed = repeat_seed(params.seed, repeat)
        if params.protocol == "leave_one_corpus_out":
            options = params.leave_one_corpus_out
            one = assign_corpus_folds(manifest, options.corpora, subset=options.subset,
                                      validation_fraction=params.validation_fraction, seed=seed)
        elif params.protocol == "actor_kfold":
            kfold = params.actor_kfold
            one = assign_folds(manifest, kfold.folds, subset=params.subset, train_subset=kfold.train_subset,
                               test_subset=kfold.test_subset, validation_fraction=params.validation_fraction,
                               validation_by=params.validation_by, seed=seed)
        else:
            one = assign_partitions(manifest, params.protocol, subset=params.subset,
                                    test_fraction=params.test_fraction, test_actors=params.test_actors,
                                    validation_fraction=params.validation_fraction,
                                    validation_by=params.validation_by, seed=seed)
        if params.protocol != "leave_one_corpus_out" and params.also_train_on:
            one = with_training_corpora(one, original, params.also_train_on)
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
