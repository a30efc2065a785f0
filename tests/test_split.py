"""The split, and the proof that nothing of a test or validation clip reaches training."""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ser.config import Split, parse
from ser.corpus import make_name, parse_name
from ser.rows import partition_rows
from ser.split import actor_folds, assign_folds, assign_partitions, repeat_seed, run_names, runs_of, validation_actors
from ser.split import make_split as split_by_params

# params.yaml's split section, one repeat and RAVDESS alone unless a test says otherwise.
BASE = {**yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["split"],
        "repeats": 1, "also_train_on": []}


def make_split(manifest: pd.DataFrame, changes: dict) -> pd.DataFrame:
    """ser.split.make_split on BASE with a test's changes, parsed as the stage parses params.yaml."""
    merged = {**BASE, **changes}
    for section in ("actor_kfold", "leave_one_corpus_out"):
        merged[section] = {**BASE[section], **changes.get(section, {})}
    return split_by_params(manifest, parse(Split, merged, "split"))


def full_ravdess_manifest() -> pd.DataFrame:
    """The 2452 clip names of RAVDESS (no audio needed to split)."""
    names = []
    for channel, emotions, actors in ((1, range(1, 9), range(1, 25)),
                                      (2, range(1, 7), [a for a in range(1, 25) if a != 18])):
        for actor, emotion, intensity, statement, repetition in itertools.product(
                actors, emotions, (1, 2), (1, 2), (1, 2)):
            if emotion == 1 and intensity == 2:
                continue
            names.append(make_name(channel, emotion, intensity, statement, repetition, actor))
    return pd.DataFrame([parse_name(n).__dict__ for n in names])


MANIFEST = full_ravdess_manifest()


def test_full_corpus_has_2452_clips():
    assert len(MANIFEST) == 2452
    assert MANIFEST["vocal_channel"].value_counts().to_dict() == {"speech": 1440, "song": 1012}


def test_random_split_is_stratified_seeded_and_disjoint():
    split = assign_partitions(MANIFEST, "random", test_fraction=0.2, validation_fraction=0.1, seed=7)
    counts = split["partition"].value_counts()
    assert counts["test"] == 490 and counts["validation"] == 196 and counts.sum() == 2452
    assert split["clip_id"].is_unique
    # Stratified: each emotion's test share is within one clip of 20 %.
    per_emotion = split.groupby("emotion")["partition"].apply(lambda p: (p == "test").mean())
    assert per_emotion.between(0.19, 0.21).all()
    again = assign_partitions(MANIFEST.sample(frac=1, random_state=3), "random", seed=7)
    pd.testing.assert_frame_equal(split, again)  # same seed, any input order: same split
    other = assign_partitions(MANIFEST, "random", seed=8)
    assert not split["partition"].equals(other["partition"])


def test_actor_holdout_keeps_actors_apart():
    split = assign_partitions(MANIFEST, "actor_holdout", test_actors=[1, 11, 20, 21], seed=1)
    actors = split.groupby("partition")["actor"].apply(set)
    assert actors["test"] == {1, 11, 20, 21}
    assert not actors["test"] & (actors["train"] | actors["validation"])


def test_subset_and_bad_protocol():
    speech = assign_partitions(MANIFEST, "random", subset="speech", seed=1)
    assert len(speech) == 1440 and speech["vocal_channel"].eq("speech").all()
    with pytest.raises(ValueError, match="split.protocol"):
        assign_partitions(MANIFEST, "by_mood")
    with pytest.raises(ValueError, match="test_actors"):
        assign_partitions(MANIFEST, "actor_holdout", test_actors=[25])


@pytest.mark.parametrize("protocol", ["random", "actor_holdout"])
def test_no_copy_of_a_held_out_clip_reaches_training(protocol):
    split = assign_partitions(MANIFEST, protocol, test_actors=[2, 15], seed=3)
    # The feature cache holds every clip and its 4 copies, whatever the split.
    index = pd.DataFrame([(c, k) for c in MANIFEST["clip_id"] for k in range(5)], columns=["clip_id", "copy"])
    rows = partition_rows(index, split)
    partition = split.set_index("clip_id")["partition"]
    train_clips = set(index["clip_id"].iloc[rows["train"]])
    assert train_clips == set(partition[partition == "train"].index)
    held_out = set(partition[partition != "train"].index)
    assert not train_clips & held_out
    # Held-out sides are evaluated on originals only, each clip exactly once.
    for name in ("validation", "test"):
        chosen = index.iloc[rows[name]]
        assert chosen["copy"].eq(0).all()
        assert sorted(chosen["clip_id"]) == sorted(partition[partition == name].index)
    assert len(rows["train"]) == 5 * len(train_clips)
    assert np.intersect1d(rows["train"], np.concatenate([rows["validation"], rows["test"]])).size == 0
    # Without copies (archs.<arch>.train.augmented_copies: false) training takes each of its originals once.
    originals_only = partition_rows(index, split, copies=False)
    assert index.iloc[originals_only["train"]]["copy"].eq(0).all()
    assert sorted(index["clip_id"].iloc[originals_only["train"]]) == sorted(train_clips)
    for name in ("validation", "test"):
        np.testing.assert_array_equal(originals_only[name], rows[name])


EMOBOX_FOLDS = [[1, 11, 20, 21], [4, 10, 12, 14], [8, 9, 19, 23], [3, 5, 7, 24], [2, 15, 16, 18], [6, 13, 17, 22]]


def kfold_params(**kfold) -> dict:
    return {"protocol": "actor_kfold", "subset": "all", "validation_fraction": 0.1, "seed": 42,
            "actor_kfold": {"folds": EMOBOX_FOLDS, "train_subset": "all", "test_subset": "speech", **kfold}}


def test_actor_kfold_never_puts_an_actor_on_both_sides():
    folds = {fold: assignment for (_, fold), assignment in runs_of(make_split(MANIFEST, kfold_params())).items()}
    assert sorted(folds) == [1, 2, 3, 4, 5, 6]
    tested = []
    for fold, assignment in folds.items():
        actors = assignment.groupby("partition")["actor"].apply(set).to_dict()
        assert actors["test"] == set(EMOBOX_FOLDS[fold - 1])
        # Neither training nor model selection sees a held-out actor, in any subset.
        assert not (actors["train"] | actors["validation"]) & set(EMOBOX_FOLDS[fold - 1])
        assert actors["validation"] <= set(range(1, 25)) - set(EMOBOX_FOLDS[fold - 1])
        test = assignment[assignment["partition"] == "test"]
        assert (test["vocal_channel"] == "speech").all() and len(test) == 240  # EmoBox: 4 actors x 60
        excluded = assignment[assignment["partition"] == "excluded"]
        # The held-out actors' song, and the validation actors' song (they select on speech, as tested).
        assert set(excluded["actor"]) <= set(EMOBOX_FOLDS[fold - 1]) | actors["validation"]
        assert (excluded["vocal_channel"] == "song").all()
        tested += list(test["clip_id"])
    # Every speech clip is tested exactly once over the folds.
    assert sorted(tested) == sorted(MANIFEST.loc[MANIFEST["vocal_channel"] == "speech", "clip_id"])


@pytest.mark.parametrize("protocol", ["actor_kfold", "actor_holdout"])
def test_speaker_independent_protocols_select_models_on_actors_held_out_of_training(protocol):
    params = {**kfold_params(), "protocol": protocol, "test_fraction": 0.2, "test_actors": [1, 11, 20, 21]}
    for (_, fold), assignment in runs_of(make_split(MANIFEST, params)).items():
        actors = assignment.groupby("partition")["actor"].apply(set).to_dict()
        tested = set(EMOBOX_FOLDS[fold - 1]) if protocol == "actor_kfold" else {1, 11, 20, 21}
        assert actors["test"] == tested
        # 10 % of the 20 training actors, one of each gender, none of them training or tested.
        assert len(actors["validation"]) == 2 and {a % 2 for a in actors["validation"]} == {0, 1}
        assert not actors["validation"] & (actors["train"] | actors["test"])
        assert actors["train"] | actors["validation"] == set(range(1, 25)) - tested
        validation = assignment[assignment["partition"] == "validation"]
        if protocol == "actor_kfold":  # they are scored as the test is: on speech (test_subset)
            assert validation["vocal_channel"].eq("speech").all() and len(validation) == 2 * 60
    by_clip = runs_of(make_split(MANIFEST, {**params, "validation_by": "clip"}))
    for assignment in by_clip.values():  # the former draw, kept selectable: a share of the training actors' clips
        actors = assignment.groupby("partition")["actor"].apply(set).to_dict()
        assert actors["validation"] == actors["train"]
    with pytest.raises(ValueError, match="validation_by"):
        make_split(MANIFEST, {**params, "validation_by": "speaker"})


def test_random_split_validates_on_clips_whatever_validation_by_says():
    params = {**kfold_params(), "protocol": "random", "test_fraction": 0.2, "test_actors": []}
    pd.testing.assert_frame_equal(make_split(MANIFEST, params), make_split(MANIFEST, {**params, "validation_by": "clip"}))


def test_actor_kfold_no_copy_of_a_test_clip_reaches_training():
    split = make_split(MANIFEST, kfold_params(test_subset="all"))
    index = pd.DataFrame([(c, k) for c in MANIFEST["clip_id"] for k in range(5)], columns=["clip_id", "copy"])
    actor_of = MANIFEST.set_index("clip_id")["actor"]
    for (_, fold), assignment in runs_of(split).items():
        rows = partition_rows(index, assignment)
        train_clips = set(index["clip_id"].iloc[rows["train"]])
        assert not {actor_of[c] for c in train_clips} & set(EMOBOX_FOLDS[fold - 1])
        test_clips = set(index["clip_id"].iloc[rows["test"]])
        assert not train_clips & test_clips
        assert index.iloc[rows["test"]]["copy"].eq(0).all()


def test_actor_kfold_is_stable_and_configurable():
    split = make_split(MANIFEST, kfold_params())
    again = make_split(MANIFEST.sample(frac=1, random_state=5), kfold_params())
    pd.testing.assert_frame_equal(split, again)
    speech_only = runs_of(make_split(MANIFEST, kfold_params(train_subset="speech")))
    for assignment in speech_only.values():
        used = assignment[assignment["partition"] != "excluded"]
        assert (used["vocal_channel"] == "speech").all()
    assert actor_folds(range(1, 25), 5) == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15],
                                            [16, 17, 18, 19, 20], [21, 22, 23, 24]]
    assert len(runs_of(make_split(MANIFEST, kfold_params(folds=4)))) == 4
    for bad in ([[1, 2], [2, 3]], [[1, 25]], [[1, 2, 3]], 1):
        with pytest.raises(ValueError, match="actor_kfold.folds"):
            actor_folds(range(1, 25), bad)
    with pytest.raises(ValueError, match="assign_folds"):
        assign_partitions(MANIFEST, "actor_kfold")


@pytest.mark.parametrize("protocol", ["random", "actor_kfold"])
def test_repeats_redraw_every_seed_and_never_leak(protocol):
    params = {**kfold_params(), "protocol": protocol, "test_fraction": 0.2, "test_actors": [], "repeats": 3}
    runs = runs_of(make_split(MANIFEST, params))
    folds = 6 if protocol == "actor_kfold" else 1
    assert list(runs) == [(repeat, fold) for repeat in (1, 2, 3) for fold in range(1, folds + 1)]
    index = pd.DataFrame([(c, k) for c in MANIFEST["clip_id"] for k in range(5)], columns=["clip_id", "copy"])
    for (repeat, fold), assignment in runs.items():
        # Repeat r is the single draw with seed + r - 1: the kept single runs stay what they were.
        single = make_split(MANIFEST, {**params, "repeats": 1, "seed": 42 + repeat - 1})
        expected = runs_of(single)[1, fold]
        pd.testing.assert_frame_equal(assignment.drop(columns="repeat"), expected.drop(columns="repeat"))
        rows = partition_rows(index, assignment)
        train_clips = set(index["clip_id"].iloc[rows["train"]])
        held_out = set(assignment.loc[assignment["partition"].isin(["validation", "test"]), "clip_id"])
        assert not train_clips & held_out
    tests = [set(runs[repeat, 1].query("partition == 'test'")["clip_id"]) for repeat in (1, 2, 3)]
    validations = [set(runs[repeat, 1].query("partition == 'validation'")["clip_id"]) for repeat in (1, 2, 3)]
    if protocol == "random":
        assert tests[0] != tests[1] != tests[2]     # a repeated stratified 80/20
    else:
        assert tests[0] == tests[1] == tests[2]     # the folds are the folds; their validation draw is new
    assert validations[0] != validations[1] != validations[2]


def test_run_names_are_folders_and_curve_prefixes():
    assert run_names([(1, 1)]) == {(1, 1): ""}
    assert run_names([(1, 1), (1, 2)]) == {(1, 1): "fold_1", (1, 2): "fold_2"}
    assert run_names([(1, 1), (2, 1)]) == {(1, 1): "repeat_1", (2, 1): "repeat_2"}
    assert run_names([(r, f) for r in (1, 2) for f in (1, 2)])[2, 1] == "repeat_2/fold_1"
    with pytest.raises(ValueError, match="split.repeats"):
        make_split(MANIFEST, {**kfold_params(), "repeats": 0})


def several_corpora_manifest() -> pd.DataFrame:
    """RAVDESS's names beside three small corpora of other speakers, as prepare writes them."""
    ravdess = MANIFEST.assign(corpus="ravdess", speaker=[f"ravdess/{a:02d}" for a in MANIFEST["actor"]])
    others = []
    for corpus, speakers in (("emodb", 10), ("emovo", 6), ("turev", 6)):
        for speaker in range(speakers):
            for number, emotion in enumerate(("angry", "happy", "neutral", "sad") * 3):
                others.append({"clip_id": f"{corpus}_{speaker}_{number}", "corpus": corpus,
                               "speaker": f"{corpus}/{speaker}", "emotion": emotion, "vocal_channel": "speech",
                               "actor": pd.NA, "gender": None})
    manifest = pd.concat([ravdess, pd.DataFrame(others)], ignore_index=True)
    return manifest.astype({"actor": "Int64"})


SEVERAL = several_corpora_manifest()
LOCO = {"protocol": "leave_one_corpus_out", "seed": 42, "repeats": 2, "validation_fraction": 0.1,
        "leave_one_corpus_out": {"corpora": ["ravdess", "emodb", "emovo", "turev"], "subset": "speech"}}


def test_leave_one_corpus_out_never_puts_a_corpus_or_speaker_on_both_sides():
    split = make_split(SEVERAL, LOCO)
    assert sorted(split["repeat"].unique()) == [1, 2] and sorted(split["fold"].unique()) == [1, 2, 3, 4]
    for (repeat, fold), assignment in split.groupby(["repeat", "fold"]):
        tested = assignment[assignment["partition"] == "test"]
        training = assignment[assignment["partition"] == "train"]
        validation = assignment[assignment["partition"] == "validation"]
        assert set(tested["corpus"]) == {LOCO["leave_one_corpus_out"]["corpora"][fold - 1]}
        assert not set(tested["corpus"]) & (set(training["corpus"]) | set(validation["corpus"]))
        # Validation speakers come from every training corpus, and never train.
        assert set(validation["corpus"]) == set(training["corpus"])
        assert not set(validation["speaker"]) & set(training["speaker"])
        assert not set(tested["speaker"]) & (set(training["speaker"]) | set(validation["speaker"]))
        assert (tested["vocal_channel"] == "speech").all()  # RAVDESS's song is outside the subset
        # The proof on the cache's rows: nothing of a tested clip is a training row.
        index = pd.DataFrame({"clip_id": assignment["clip_id"], "copy": 0})
        rows = partition_rows(index, assignment)
        assert not set(index["clip_id"].iloc[rows["train"]]) & set(tested["clip_id"])
    # Seeded: the same params give the same split; each repeat draws its own validation speakers.
    pd.testing.assert_frame_equal(split, make_split(SEVERAL, LOCO))
    first, second = (split[(split["repeat"] == r) & (split["partition"] == "validation")] for r in (1, 2))
    assert set(first["speaker"]) != set(second["speaker"])


def test_in_corpus_protocols_split_ravdess_alone_whatever_else_the_manifest_holds():
    params = {"protocol": "random", "subset": "all", "test_fraction": 0.2, "test_actors": [], "seed": 42,
              "validation_fraction": 0.1, "validation_by": "actor", "repeats": 1}
    pd.testing.assert_frame_equal(make_split(SEVERAL, params), make_split(MANIFEST, params))


def test_leave_one_corpus_out_names_a_corpus_the_manifest_lacks():
    params = {**LOCO, "leave_one_corpus_out": {"corpora": ["ravdess", "savee"], "subset": "speech"}}
    with pytest.raises(ValueError, match=r"unknown: \['savee'\]"):
        make_split(SEVERAL, params)


def test_also_train_on_adds_other_corpora_to_training_only():
    params = {"protocol": "actor_kfold", "subset": "all", "seed": 42, "validation_fraction": 0.1,
              "validation_by": "actor", "repeats": 1,
              "actor_kfold": {"folds": 3, "train_subset": "speech", "test_subset": "speech"}}
    alone = make_split(SEVERAL, params)
    both = make_split(SEVERAL, {**params, "also_train_on": ["emodb", "turev"]})
    ravdess = both[both["corpus"] == "ravdess"].drop(columns=["corpus", "speaker"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(ravdess, alone.astype({"actor": "Int64"}), check_dtype=False)
    added = both[both["corpus"] != "ravdess"]
    assert set(added["partition"]) == {"train"} and set(added["corpus"]) == {"emodb", "turev"}
    assert len(added) == 3 * (10 + 6) * 12  # every clip of both, in each of the 3 folds
    with pytest.raises(ValueError, match=r"also_train_on names \['savee'\]"):
        make_split(SEVERAL, {**params, "also_train_on": ["savee"]})


def test_two_corpora_are_enough_and_no_validation_share_means_no_validation_speakers():
    two = {**LOCO, "leave_one_corpus_out": {"corpora": ["emodb", "turev"], "subset": "speech"}, "repeats": 1}
    split = make_split(SEVERAL, two)
    assert sorted(split["fold"].unique()) == [1, 2] and set(split["corpus"]) == {"emodb", "turev"}
    assert "validation" in set(split["partition"])
    unvalidated = make_split(SEVERAL, {**two, "validation_fraction": 0.0})
    assert set(unvalidated["partition"]) == {"train", "test"}


def test_also_train_on_keeps_each_fold_and_names_ravdess_speakers_as_the_other_corpora_do():
    params = {"protocol": "actor_kfold", "subset": "all", "seed": 42, "validation_fraction": 0.1,
              "validation_by": "actor", "repeats": 1, "also_train_on": ["emodb"],
              "actor_kfold": {"folds": 3, "train_subset": "speech", "test_subset": "speech"}}
    both = make_split(SEVERAL, params)
    ravdess = both[both["corpus"] == "ravdess"]
    assert (ravdess["speaker"] == [f"ravdess/{int(a):02d}" for a in ravdess["actor"]]).all()
    added = both[both["corpus"] == "emodb"]
    assert sorted(added["fold"].unique()) == [1, 2, 3]
    assert (added.groupby("fold").size() == 10 * 12).all()


def test_actor_folds_at_their_bounds():
    assert actor_folds(range(1, 8), 3) == [[1, 2, 3], [4, 5], [6, 7]]  # the first groups take the remainder
    assert actor_folds(range(1, 25), 2) == [list(range(1, 13)), list(range(13, 25))]
    assert actor_folds(range(1, 25), 24) == [[a] for a in range(1, 25)]
    assert actor_folds(range(1, 25), [[3], [1, 2]]) == [[3], [1, 2]]
    for bad in (25, [[1, 2], [25]]):
        with pytest.raises(ValueError, match="actor_kfold.folds"):
            actor_folds(range(1, 25), bad)


def test_leave_one_corpus_out_validates_on_one_ravdess_actor_of_each_gender():
    split = make_split(SEVERAL, LOCO)
    for (repeat, fold), assignment in split.groupby(["repeat", "fold"]):
        validation = assignment[(assignment["partition"] == "validation") & (assignment["corpus"] == "ravdess")]
        if len(validation):  # RAVDESS's odd actors are male, its even ones female
            assert sorted(int(a) % 2 for a in validation["actor"].unique()) == [0, 1]


def test_a_manifest_without_other_corpora_is_named_for_the_protocols_that_need_them():
    assert "corpus" not in MANIFEST
    with pytest.raises(ValueError, match="manifest with a corpus column"):
        make_split(MANIFEST, LOCO)
    params = {"protocol": "random", "subset": "all", "test_fraction": 0.2, "seed": 42, "validation_fraction": 0.1,
              "validation_by": "actor", "repeats": 1, "also_train_on": ["emodb"]}
    with pytest.raises(ValueError, match=r"also_train_on names \['emodb'\]"):
        make_split(MANIFEST, params)


def test_repeat_r_takes_the_base_seed_plus_r_minus_one_as_params_yaml_says():
    assert [repeat_seed(42, r) for r in (1, 2, 5)] == [42, 43, 46]


def test_validation_takes_its_share_of_speakers_at_least_one_never_all():
    speakers = pd.DataFrame({"speaker": [f"s{i}" for i in range(10)]})
    assert len(validation_actors(speakers, 0.1, seed=1, column="speaker")) == 1
    assert len(validation_actors(speakers, 0.3, seed=1, column="speaker")) == 3
    assert len(set(validation_actors(speakers, 1.0, seed=1, column="speaker"))) == 9  # nine distinct speakers
    assert len(validation_actors(speakers.head(2), 0.9, seed=1, column="speaker")) == 1


def test_each_protocol_honours_its_params_not_the_functions_defaults():
    loco_all = make_split(SEVERAL, {**LOCO, "repeats": 1, "leave_one_corpus_out": {
        "corpora": ["ravdess", "emodb"], "subset": "all"}})
    assert set(loco_all[loco_all["corpus"] == "ravdess"]["vocal_channel"]) == {"speech", "song"}
    wider = make_split(MANIFEST, {**kfold_params(), "validation_fraction": 0.3, "validation_by": "actor", "repeats": 1})
    narrow = make_split(MANIFEST, {**kfold_params(), "validation_fraction": 0.1, "validation_by": "actor", "repeats": 1})
    count = lambda split: split[split["partition"] == "validation"].groupby("fold")["actor"].nunique()  # noqa: E731
    assert (count(wider) > count(narrow)).all()
    held = make_split(MANIFEST, {"protocol": "actor_holdout", "subset": "all", "test_actors": [3, 4], "seed": 42,
                                 "validation_fraction": 0.1, "validation_by": "actor", "repeats": 1})
    assert sorted(held[held["partition"] == "test"]["actor"].unique()) == [3, 4]


def test_the_final_models_rows_follow_its_recipe_and_never_hold_a_test_clip():
    from types import SimpleNamespace
    from ser.rows import final_model_rows
    assignment = pd.DataFrame({"clip_id": ["a", "b", "c"], "partition": ["train", "validation", "test"]})
    index = pd.DataFrame({"clip_id": ["a", "a", "b", "b", "c", "c"], "copy": [0, 1, 0, 1, 0, 1]})
    recipe = lambda refit, copies: SimpleNamespace(refit=refit, augmented_copies=copies)  # noqa: E731
    assert final_model_rows(index, assignment, recipe(False, False)).tolist() == [0]
    assert final_model_rows(index, assignment, recipe(False, True)).tolist() == [0, 1]
    assert sorted(final_model_rows(index, assignment, recipe(True, False)).tolist()) == [0, 2]
    assert sorted(final_model_rows(index, assignment, recipe(True, True)).tolist()) == [0, 1, 2, 3]
