import numpy as np
import pytest

from scipy import stats

from ser.evaluation import classification_metrics, mean_interval, plot_confusion, repeated_summary


def test_metrics_by_hand():
    actual = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 0, 1, 1, 1, 2, 0])
    metrics = classification_metrics(actual, predicted)
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["recall"]["neutral"] == pytest.approx(0.75)
    assert metrics["recall"]["calm"] == 1.0 and metrics["recall"]["happy"] == 0.5
    assert metrics["recall"]["surprised"] == 0.0            # absent class
    assert metrics["balanced_accuracy"] == pytest.approx((0.75 + 1 + 0.5) / 3)
    # macro F1 over all 8 labels: neutral 2*.75*.75/1.5=.75, calm 2*(2/3)/(5/3)=.8, happy 2/3.
    assert metrics["macro_f1"] == pytest.approx((0.75 + 0.8 + 2 / 3) / 8)
    assert metrics["weighted_f1"] == pytest.approx((4 * 0.75 + 2 * 0.8 + 2 * 2 / 3) / 8)
    assert metrics["n_test"] == 8 and metrics["test_counts"] == {
        "neutral": 4, "calm": 2, "happy": 2, "sad": 0, "angry": 0, "fearful": 0, "disgust": 0, "surprised": 0}


def test_confusion_png(tmp_path):
    actual = np.arange(8).repeat(3)
    plot_confusion(actual, np.roll(actual, 1), tmp_path / "cm.png", title="test")
    data = (tmp_path / "cm.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]


def run(repeat, fold, accuracy, **other):
    scores = {"accuracy": accuracy, "balanced_accuracy": accuracy, "macro_f1": accuracy - 0.01,
              "weighted_f1": accuracy, **other}
    return {"repeat": repeat, "fold": fold, "n_test": 10, **scores}


def test_repeats_are_the_distribution_and_folds_are_averaged_within_a_repeat():
    runs = [run(1, 1, 0.70), run(1, 2, 0.80), run(2, 1, 0.74), run(2, 2, 0.86), run(3, 1, 0.72), run(3, 2, 0.78)]
    summary = repeated_summary(runs, {"n_test": 60})
    by_repeat = np.array([0.75, 0.80, 0.75])                 # each repeat: the mean over its two folds
    assert summary["accuracy"] == pytest.approx(by_repeat.mean())
    assert summary["accuracy_std"] == pytest.approx(by_repeat.std(ddof=1))
    assert [row["accuracy"] for row in summary["per_repeat"]] == pytest.approx(by_repeat)
    half = stats.t.ppf(0.975, 2) * by_repeat.std(ddof=1) / np.sqrt(3)
    assert summary["accuracy_ci95"]["low"] == pytest.approx(by_repeat.mean() - half)
    assert summary["accuracy_ci95"]["high"] == pytest.approx(by_repeat.mean() + half)
    # The spread over speakers is kept apart: fold 1 averages 0.72, fold 2 0.8133.
    assert summary["accuracy_fold_std"] == pytest.approx(np.std([0.72, 0.8133333], ddof=1), rel=1e-5)
    assert summary["repeats"] == 3 and summary["folds_per_repeat"] == 2 and summary["n_test"] == 20
    assert summary["runs"] == runs and summary["pooled"] == {"n_test": 60} and summary["recall"] is None


def test_a_single_run_has_no_spread_and_a_zero_width_interval():
    single = repeated_summary([run(1, 1, 0.7)], {"n_test": 10})
    assert single["accuracy_std"] == 0.0 and single["per_repeat"] == [
        {"repeat": 1, **{key: single[key] for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")}}]
    assert mean_interval(np.array([0.7])) == (0.7, 0.7)


def test_two_repeats_have_a_spread_and_an_interval_and_folds_are_each_their_own():
    runs = [run(r, f, 0.6 + 0.1 * f + 0.01 * r) for r in (1, 2) for f in (1, 2, 3)]
    summary = repeated_summary(runs, {"n_test": 60, "recall": {"neutral": 0.5}})
    assert summary["accuracy_std"] == pytest.approx(np.std([0.81, 0.82], ddof=1))
    assert summary["accuracy_ci95"]["low"] < summary["accuracy"] < summary["accuracy_ci95"]["high"]
    # Three folds: each fold's mean is its own runs' (0.715, 0.815, 0.915), not the other folds'.
    assert summary["accuracy_fold_std"] == pytest.approx(np.std([0.715, 0.815, 0.915], ddof=1))
    assert summary["recall"] == {"neutral": 0.5}
    one_fold = repeated_summary([run(1, 1, 0.7), run(2, 1, 0.8)], {"n_test": 20})
    assert "accuracy_fold_std" not in one_fold
