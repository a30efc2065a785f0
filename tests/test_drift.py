from ser.drift import drifted


def diff(old, new):
    return {"reports/metrics.json": {"accuracy": {"old": old, "new": new, "diff": new - old},
                                     "macro_f1": {"old": old, "new": new, "diff": new - old},
                                     "n_test": {"old": 490, "new": 490, "diff": 0}}}


def test_identical_metrics_pass():
    assert drifted(diff(0.78, 0.78)) == []


def test_small_moves_within_tolerance_pass():
    assert drifted(diff(0.78, 0.783), tolerance=0.005) == []


def test_a_drop_beyond_tolerance_fails_and_says_by_how_much():
    problems = drifted(diff(0.78, 0.70), tolerance=0.005)
    assert len(problems) == 2 and "accuracy moved -0.0800" in problems[0] and "macro_f1" in problems[1]


def test_a_rise_is_drift_too():
    assert drifted(diff(0.70, 0.78), tolerance=0.005)


def test_a_vanished_metric_fails():
    gone = {"reports/metrics.json": {"accuracy": {"old": 0.78, "new": None}}}
    assert "missing now" in drifted(gone)[0]
