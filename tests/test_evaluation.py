import numpy as np
import pytest

from ser.evaluation import classification_metrics, plot_confusion


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
    assert metrics["n_test"] == 8 and metrics["test_counts"]["neutral"] == 4


def test_confusion_png(tmp_path):
    actual = np.arange(8).repeat(3)
    plot_confusion(actual, np.roll(actual, 1), tmp_path / "cm.png", title="test")
    data = (tmp_path / "cm.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]
