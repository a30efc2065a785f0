"""Standardizing within a group, labels unseen (src/ser/adaptation.py), and `ser predict --adapt`."""

from types import SimpleNamespace
import numpy as np
import pandas as pd
import pytest
import torch

from ser.adaptation import (adapted_standardization, compose, group_statistics, row_groups, shrunk_statistics,
                            standardize_array, standardize_within_groups)
from ser.predict import Predictor, adaptation_groups
from ser.standardization import standardize
from synthetic import tone


def cache(seed=0):
    """Six clips of two corpora (with a copy of one), features [rows, 3, 4], and their split rows."""
    rng = np.random.default_rng(seed)
    index = pd.DataFrame({"clip_id": ["a1", "a1", "a2", "a3", "b1", "b2", "b3"], "copy": [0, 1, 0, 0, 0, 0, 0]})
    features = rng.normal(size=(7, 3, 4)).astype(np.float16)
    features[4:] += np.float16(5)  # corpus b is another microphone: every value shifted
    clips = pd.DataFrame({"clip_id": ["a1", "a2", "a3", "b1", "b2", "b3"], "corpus": list("aaabbb"),
                          "speaker": ["a/1", "a/1", "a/2", "b/1", "b/1", "b/2"],
                          "emotion": ["sad", "angry", "happy", "sad", "sad", "angry"]})
    return features, index, clips


@pytest.mark.parametrize("per", ["channel", "element"])
def test_each_group_is_standardized_on_its_own_originals(per):
    features, index, clips = cache()
    groups = row_groups(index, clips, "corpus")
    adapted = standardize_within_groups(features, index, groups, per)
    axes = (0, 2) if per == "channel" else (0,)
    for rows in ([0, 2, 3], [4, 5, 6]):  # each corpus's original clips: mean 0, std 1
        np.testing.assert_allclose(adapted[rows].mean(axis=axes), 0, atol=1e-3)
        np.testing.assert_allclose(adapted[rows].std(axis=axes), 1, atol=1e-3)
    # The copy is standardized with its corpus's statistics but does not count in them.
    statistics = group_statistics(features, index, groups, per)
    np.testing.assert_allclose(adapted[1], standardize_array(features[1:2], statistics["a"], per)[0], atol=1e-6)


def test_adaptation_statistics_never_read_a_label():
    features, index, clips = cache()
    relabelled = clips.assign(emotion=clips["emotion"].sample(frac=1, random_state=3).to_numpy())
    for within in ("corpus", "speaker"):
        first = standardize_within_groups(features, index, row_groups(index, clips, within), "channel")
        second = standardize_within_groups(features, index, row_groups(index, relabelled, within), "channel")
        np.testing.assert_array_equal(first, second)
    # Only the group column is ever read: a frame without any label works the same.
    unlabelled = clips.drop(columns=["emotion"])
    np.testing.assert_array_equal(
        standardize_within_groups(features, index, row_groups(index, unlabelled, "corpus"), "channel"),
        standardize_within_groups(features, index, row_groups(index, clips, "corpus"), "channel"))


def test_compose_is_one_step_of_two():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(5, 3, 4)).astype(np.float32))
    first = {"mean": rng.normal(size=3).tolist(), "std": rng.uniform(0.5, 2, size=3).tolist()}
    second = {"mean": rng.normal(size=3).tolist(), "std": rng.uniform(0.5, 2, size=3).tolist()}
    torch.testing.assert_close(standardize(x, compose(first, second)), standardize(standardize(x, first), second),
                               rtol=1e-5, atol=1e-5)


def test_shrinkage_moves_from_the_prior_to_the_group_with_its_size():
    own = {"mean": [4.0], "std": [1.0]}
    prior = {"mean": [0.0], "std": [2.0]}
    assert shrunk_statistics(own, prior, files=5, prior_files=0) == own
    few, many = (shrunk_statistics(own, prior, files=n, prior_files=5) for n in (1, 500))
    assert abs(few["mean"][0] - 4 / 6) < 1e-6 and abs(many["mean"][0] - 4) < 0.05
    # The group's distance from the prior widens the pooled std.
    assert few["std"][0] > 2.0
    with pytest.raises(ValueError):
        shrunk_statistics(own, prior, files=0, prior_files=5)


def test_a_model_without_adaptation_takes_the_groups_statistics_as_they_are():
    own = {"mean": [1.0, 2.0], "std": [3.0, 4.0]}
    unadapted = SimpleNamespace(adaptation=None, standardization={"mean": [0, 0], "std": [1, 1]})  # a card's part
    assert adapted_standardization(unadapted, own, files=7) == own
    card = SimpleNamespace(adaptation={"prior": {"mean": [0.0, 0.0], "std": [1.0, 1.0]},
                                       "after": {"mean": [0.0, 0.0], "std": [1.0, 1.0]}, "prior_files": 0})
    assert adapted_standardization(card, own, files=7) == own


def test_adapt_groups_by_folder_by_name_or_all(tmp_path):
    paths = [tmp_path / "s1" / "1157_a.wav", tmp_path / "s1" / "1234_b.wav", tmp_path / "s2" / "1157_c.wav"]
    assert adaptation_groups(paths, None) == [[0], [1], [2]]
    assert adaptation_groups(paths, "all") == [[0, 1, 2]]
    assert adaptation_groups(paths, "folder") == [[0, 1], [2]]
    assert adaptation_groups(paths, r"^(\d+)_") == [[0, 2], [1]]
    with pytest.raises(ValueError, match="needs a group"):
        adaptation_groups(paths, r"^\d+_")


def test_a_group_is_standardized_together_and_a_lone_file_as_before(model_dir, tmp_path):
    import soundfile as sf

    paths = []
    for number, emotion in enumerate((1, 3, 5, 4)):
        paths.append(tmp_path / f"take_{number}.wav")
        sf.write(paths[-1], tone(emotion, 30, 16000, 1.0), 16000)
    predictor = Predictor(model_dir, detect_speech=False)
    alone = [predictor.predict_file(path) for path in paths]
    assert predictor.predict_group(paths[:1])[0].probabilities == alone[0].probabilities
    together = predictor.predict_group(paths)
    assert [r.status for r in together] == ["predicted"] * 4
    assert together[0].probabilities != alone[0].probabilities
    # The group's statistics are its own: the same files in another order give the same answers.
    reordered = predictor.predict_group(paths[::-1])[::-1]
    for first, second in zip(together, reordered):
        assert first.probabilities == pytest.approx(second.probabilities, abs=1e-6)


def test_a_known_group_takes_its_training_clips_statistics_and_an_unheard_one_its_own():
    from ser.adaptation import effective_within, run_view, tested_rows

    features, index, clips = cache()
    # Corpus a trains, with its clip a3 tested (in-corpus); corpus b is never heard (left out).
    assignment = clips.assign(partition=["train", "validation", "test", "test", "test", "test"])
    seen = run_view(features, index, assignment, "corpus", "element")
    a_known = group_statistics(features.astype(np.float32)[[0, 2]], index.iloc[[0, 2]].reset_index(drop=True),
                               pd.Series(["a", "a"]), "element")["a"]
    np.testing.assert_allclose(seen[3], standardize_array(features[3:4], a_known, "element")[0], atol=1e-5)
    b_rows = [4, 5, 6]
    np.testing.assert_allclose(seen[b_rows].mean(axis=0), 0, atol=1e-3)
    assert tested_rows(index, assignment).tolist() == [False, False, False, True, True, True, True]
    # One corpus on the training side: its pooled statistics are the model's own already.
    assert effective_within("corpus", assignment) == "none" and effective_within("speaker", assignment) == "speaker"
    two = clips.assign(partition=["train", "train", "test", "train", "validation", "train"])
    assert effective_within("corpus", two) == "corpus"
    with pytest.raises(ValueError, match="adaptation.within"):
        effective_within("session", two)


def test_the_single_recording_view_is_the_pooled_training_statistics_labels_unseen():
    from types import SimpleNamespace

    from ser.adaptation import training_views

    features, index, clips = cache()
    # Corpus a trains (a2 validates), corpus b is left out.
    assignment = clips.assign(partition=["train", "validation", "train", "test", "test", "test"])
    recipe = SimpleNamespace(refit=True, augmented_copies=False)
    view, single = training_views(features, index, assignment, "corpus", recipe, "element", single_view=True)
    np.testing.assert_array_equal(view, training_views(features, index, assignment, "corpus", recipe, "element",
                                                       single_view=False)[0])
    trained = [0, 2, 3]  # the refit's rows: a's originals, the validation clip's included, no copy
    np.testing.assert_allclose(single[trained].mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(single[trained].std(0), 1, atol=1e-3)
    # A lone recording of the unheard corpus keeps its offset: the groups' view takes it away.
    assert single[4:].mean() > 2 and abs(view[4:].mean()) < 0.1
    selection = SimpleNamespace(refit=False, augmented_copies=False)  # the validation clip's statistics left out
    np.testing.assert_allclose(training_views(features, index, assignment, "corpus", selection, "element",
                                              True)[1][[0, 3]].mean(0), 0, atol=1e-3)
    # Labels are never read; a tested clip's features move only its own row.
    relabelled = assignment.assign(emotion=assignment["emotion"].sample(frac=1, random_state=3).to_numpy())
    np.testing.assert_array_equal(single, training_views(features, index, relabelled, "corpus", recipe, "element",
                                                         True)[1])
    moved = features.copy()
    moved[5] += np.float16(3)
    changed = training_views(moved, index, assignment, "corpus", recipe, "element", True)[1]
    np.testing.assert_array_equal(np.delete(changed, 5, 0), np.delete(single, 5, 0))
    # Without groups (or unasked) there is no second view: the model trains on the pooled one already.
    assert training_views(features, index, assignment, "none", recipe, "element", True)[1] is None
    assert training_views(features, index, assignment, "corpus", recipe, "element", False)[1] is None
