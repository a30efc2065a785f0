"""Can batch adaptation tell a group of one emotion from a mixed one, without labels? A screen (issue 30).

    python benchmarks/one_emotion_screen.py [--out reports/benchmarks/one_emotion_screen.json]

Reads the feature cache and manifest that `dvc exp run -S split.protocol=leave_one_corpus_out -S
'prepare.corpora=[emodb,emovo,turev]'` leaves in the workspace, and uses loco_screen's logistic proxy
(states 2-5, each training corpus on its own statistics, C = 0.01).

Adapting on a group's own statistics removes whatever the group shares; where it shares one emotion,
that is the emotion (benchmarks/adaptation_curve.py: 27.67 at 50 files). The detector tried here: score
the group one recording at a time (the training statistics), and compare the spread of the model's
class scores (decision function) over the group with their spread over the training clips. A group of
one emotion spreads less along the directions the model reads. Statistics:
- spread: mean over classes of var_group(score_k) / var_training(score_k);
- relative: spread divided by the group's mean variance over all standardized features (a channel that
  shrinks every feature should not read as one emotion).
Rule: adapt the group (its statistics shrunk towards the training corpora's, prior_files = 5) when the
statistic is at least a threshold, else score each file alone. Groups dealt as adaptation_curve.py deals
them (mixed, one speaker, one emotion; 5, 10, 20, 50 files; 2 draws). The threshold is chosen for each
left-out corpus X on the inner screen (the other corpora, each left out in turn, X never read) by the
mean 4-class UA over the three dealings and four sizes; the outer scores are read for the report.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

from ser.adaptation import shrunk_statistics
from ser.corpus import EMOTIONS
from ser.cross_corpus import cross_corpus_scores
from ser.evaluation import current_commit, describe_machine
from ser.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adaptation_curve import deal  # noqa: E402
from loco_screen import screen_clips, standardized_within  # noqa: E402

STATES = [2, 3, 4, 5]
SIZES = [5, 10, 20, 50]
DEALINGS = ("mixed", "speaker", "one_emotion")
PRIOR_FILES = 5.0
THRESHOLDS = {"spread": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, np.inf],
              "relative": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 2.0, np.inf]}


def probabilities_of(model, x: np.ndarray) -> np.ndarray:
    out = np.zeros((len(x), len(EMOTIONS)))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def fold_scores(features, clips, labels, training, tested, draws: int) -> dict:
    """4-class UA of `tested` for every (statistic, dealing, size, threshold), and each dealing's median statistic."""
    train, _ = standardized_within(features[training], clips["corpus"].to_numpy()[training])
    mean, std = train.mean(0), train.std(0) + 1e-6
    pooled_mean, pooled_std = features[training].mean(0), features[training].std(0) + 1e-6
    prior = {"mean": pooled_mean, "std": pooled_std}
    model = LogisticRegression(C=0.01, max_iter=300, class_weight="balanced").fit((train - mean) / std,
                                                                                  labels[training])
    training_spread = model.decision_function((train - mean) / std).var(0)
    x, group_clips = features[tested], clips[tested].reset_index(drop=True)
    truth = [EMOTIONS[a] for a in labels[tested]]
    alone = ((x - pooled_mean) / pooled_std - mean) / std
    alone_scores, alone_probabilities = model.decision_function(alone), probabilities_of(model, alone)
    scores, medians = {}, {}
    for how in DEALINGS:
        for size in SIZES:
            for draw in range(draws):
                statistic = {name: np.zeros(len(x)) for name in THRESHOLDS}
                adapted = np.zeros((len(x), len(EMOTIONS)))
                for group in deal(group_clips, size, how, np.random.default_rng([draw, size])):
                    shrunk = shrunk_statistics({"mean": x[group].mean(0), "std": x[group].std(0)}, prior,
                                               len(group), PRIOR_FILES)  # as `ser predict --adapt` does
                    group_mean, group_std = np.asarray(shrunk["mean"]), np.asarray(shrunk["std"])
                    adapted[group] = probabilities_of(model, ((x[group] - group_mean) / group_std - mean) / std)
                    spread = (alone_scores[group].var(0) / training_spread).mean() if len(group) > 1 else np.inf
                    statistic["spread"][group] = spread
                    statistic["relative"][group] = spread / alone[group].var(0).mean() if len(group) > 1 else np.inf
                for name, thresholds in THRESHOLDS.items():
                    finite = statistic[name][np.isfinite(statistic[name])]
                    medians.setdefault((name, how, size), []).append(float(np.median(finite)))
                    for threshold in thresholds:
                        chosen = np.where((statistic[name] >= threshold)[:, None], adapted, alone_probabilities)
                        ua = cross_corpus_scores(chosen, truth)["four_class"]["balanced_accuracy"]
                        scores.setdefault((name, how, size, threshold), []).append(ua)
    return {"ua": {key: float(np.mean(value)) for key, value in scores.items()},
            "median": {key: float(np.mean(value)) for key, value in medians.items()}}


def by_threshold(fold: dict, name: str) -> dict:
    """Each threshold's UA per dealing (mean over sizes) and over dealings."""
    table = {}
    for threshold in THRESHOLDS[name]:
        row = {how: 100 * float(np.mean([fold["ua"][(name, how, size, threshold)] for size in SIZES]))
               for how in DEALINGS}
        table[threshold] = {**row, "mean": float(np.mean(list(row.values())))}
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", default="data/features")
    parser.add_argument("--manifest", default="data/manifest.parquet")
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--out", default="reports/benchmarks/one_emotion_screen.json")
    args = parser.parse_args()
    cache, clips, _, _ = screen_clips(args.features, args.manifest)
    features = cache[:, STATES].reshape(len(cache), -1).astype(np.float32)
    labels = clips["emotion"].map(EMOTIONS.index).to_numpy()
    corpora = sorted(clips["corpus"].unique())
    side = lambda names: clips["corpus"].isin(names).to_numpy()  # noqa: E731
    folds = {}
    for outer in tqdm(corpora, desc="left-out corpora"):
        others = [c for c in corpora if c != outer]
        folds[outer] = {"outer": fold_scores(features, clips, labels, side(others), side([outer]), args.draws),
                        "inner": [fold_scores(features, clips, labels, side([c for c in others if c != held]),
                                              side([held]), args.draws) for held in others]}
    report = {"machine": describe_machine("cpu"), "commit": current_commit(), "clips": len(clips),
              "states": STATES, "sizes": SIZES, "draws": args.draws, "prior_files": PRIOR_FILES, "statistics": {}}
    for name, thresholds in THRESHOLDS.items():
        corpora_report = {}
        for outer in corpora:
            inner = {t: float(np.mean([by_threshold(fold, name)[t]["mean"] for fold in folds[outer]["inner"]]))
                     for t in thresholds}
            chosen = max(thresholds, key=lambda t: inner[t])
            outer_table = by_threshold(folds[outer]["outer"], name)
            corpora_report[outer] = {
                "chosen_threshold": str(chosen), "inner_mean_by_threshold": {str(t): round(v, 2) for t, v in inner.items()},
                "outer_by_threshold": {str(t): {k: round(v, 2) for k, v in row.items()} for t, row in outer_table.items()},
                "median_statistic": {how: [round(folds[outer]["outer"]["median"][(name, how, s)], 3) for s in SIZES]
                                     for how in DEALINGS}}
        mean_over = lambda pick: {how: round(float(np.mean([pick(c)[how] for c in corpora])), 2)  # noqa: E731
                                  for how in (*DEALINGS, "mean")}
        report["statistics"][name] = {
            "corpora": corpora_report,
            "always_adapt": mean_over(lambda c: corpora_report[c]["outer_by_threshold"]["0.0"]),
            "never_adapt": mean_over(lambda c: corpora_report[c]["outer_by_threshold"]["inf"]),
            "nested": mean_over(lambda c: corpora_report[c]["outer_by_threshold"][corpora_report[c]["chosen_threshold"]])}
        print(name, {k: report["statistics"][name][k] for k in ("always_adapt", "never_adapt", "nested")})
    write_json(Path(args.out), report)


if __name__ == "__main__":
    main()
