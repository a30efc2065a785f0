from ser.drift import drifted

PATH = "reports/metrics.json"
TOLERANCE = {PATH: {"accuracy": 0.02, "macro_f1": 0.02}}


def diff(old, new):
    return {PATH: {"accuracy": {"old": old, "new": new, "diff": new - old},
                   "macro_f1": {"old": old, "new": new, "diff": new - old},
                   "n_test": {"old": 490, "new": 490, "diff": 0}}}


def test_identical_metrics_pass():
    assert drifted(diff(0.78, 0.78), TOLERANCE) == []


def test_moves_within_the_committed_tolerance_pass():
    assert drifted(diff(0.78, 0.795), TOLERANCE) == []


def test_a_drop_beyond_the_committed_tolerance_fails_and_says_by_how_much():
    problems = drifted(diff(0.78, 0.70), TOLERANCE)
    assert len(problems) == 2 and "accuracy moved -0.0800" in problems[0] and "tolerance 0.0200" in problems[0]
    assert "macro_f1" in problems[1]


def test_a_rise_is_drift_too():
    assert drifted(diff(0.70, 0.78), TOLERANCE)


def test_each_metric_has_its_own_tolerance_and_an_override_wins():
    tolerances = {PATH: {"accuracy": 0.1, "macro_f1": 0.001}}
    assert [p.split(":")[1].split()[0] for p in drifted(diff(0.78, 0.77), tolerances)] == ["macro_f1"]
    assert drifted(diff(0.78, 0.77), tolerances, override=0.05) == []


def test_a_result_without_a_tolerance_cannot_pass():
    problems = drifted(diff(0.78, 0.78), {PATH: {"accuracy": None}})
    assert problems and "no committed drift tolerance" in problems[0]


def test_a_vanished_metric_fails():
    gone = {PATH: {"accuracy": {"old": 0.78, "new": None}}}
    assert "missing now" in drifted(gone, TOLERANCE)[0]


def test_a_check_that_compares_nothing_fails():
    assert "nothing was compared" in drifted({}, TOLERANCE)[0]
    problems = drifted(diff(0.78, 0.78), TOLERANCE, targets=[PATH, "reports/results/random/whisper_mlp.json"])
    assert problems == ["reports/results/random/whisper_mlp.json: no metrics on either side (a wrong target?)"]


def test_a_watched_metric_missing_on_both_sides_fails():
    only_count = {PATH: {"n_test": {"old": 490, "new": 490, "diff": 0}}}
    problems = drifted(only_count, TOLERANCE)
    assert [p.split(":")[1].split()[0] for p in problems] == ["accuracy", "macro_f1"]
    assert "in neither the committed nor the new metrics" in problems[0]
