"""A fast screen of leave-one-corpus-out variants, chosen by nested leave-one-corpus-out (issue 30).

    python benchmarks/loco_screen.py [--variants JSON] [--out reports/benchmarks/loco_screen.json]

Reads the feature cache and manifest that `dvc exp run -S split.protocol=leave_one_corpus_out -S
'prepare.corpora=[emodb,emovo,turev]'` leaves in the workspace (RAVDESS's speech clips and the other
corpora's, original clips only). A logistic regression (the default arch's member, scikit-learn's C)
stands in for the whole model, a minute per variant instead of 25: it ranks variants, the pipeline
then measures the one chosen. For the kept leave-one-corpus-out model (`logistic_share: 1`, the member
alone) it is the whole model: the same fit on the same rows.

For each corpus X (outer): train on the others, score X batch-adapted (X standardized on its own
statistics) and one recording at a time (the training corpora's pooled statistics), EmoBox's 4-class
UA. Inner: the same over the training corpora alone, each left out in turn, X never read. A variant
is chosen for X on its inner batch UA, so the nested estimate (each X scored with the variant its
inner screen chose) has not looked at X. A variant sets:
- within: corpus | speaker: the groups standardized on their own statistics in training;
- layers: all | a list of Whisper states (0 = the convolutions' output) taken from the cache;
- prior: none | em: the batch's class priors re-estimated by EM (Saerens et al. 2002), label-free;
- C: the regression's inverse L2 strength;
- classes: all | four: train on every clip, or on the clips of the four scored classes only (calm as neutral);
- statistics: both | mean: the states' mean and std over frames, or their mean alone;
- copies: false | true: the training corpora's augmented copies (the cache's copy > 0 rows, made by
  `augment`, e.g. with `augment.channel`) train beside their clips, standardized on their clip's group;
- nuisance: 0 | k: the k principal directions of the training side's speaker means (pooled-standardized)
  projected out of every view (nuisance attribute projection, Campbell et al. 2006): speakers of acted corpora
  voice every emotion, so their means carry voice and channel, not emotion;
- single_view: false | true: the training rows also train as one recording is scored (pooled statistics), as
  `adaptation.single_view` trains them;
- group_view: false | true: the training rows also train as `ser predict --adapt` scores a group of n: each
  corpus's rows in seeded random groups of n = 1, 5, 10, 20, 50 in turn, on the group's statistics shrunk
  towards the pooled ones (ser.adaptation.shrunk_statistics, 5 files);
- swap_view: false | true: the training rows also train pooled-standardized and moved from their speaker's
  mean to a random training speaker's (seeded): one recording of a voice and channel the row never had;
- instance: false | true: each clip's vector of each state z-scored over its own elements (a gain and offset
  per clip removed, one file alone);
- whiten: 0 | s: each group also whitened on its own correlations shrunk by s towards the identity
  (`whitened_within`), one recording on the pooled training side's; 0 = standardization alone.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

from ser.adaptation import shrunk_statistics
from ser.corpus import EMOTIONS
from ser.cross_corpus import FOUR_CLASSES, cross_corpus_scores
from ser.evaluation import current_commit, describe_machine
from ser.features import load_feature_cache
from ser.io import write_json

VARIANTS = [{"within": "corpus"}, {"within": "speaker"}, {"within": "corpus", "prior": "em"},
            {"within": "corpus", "layers": [1, 2, 3]}, {"within": "corpus", "layers": [2, 3]},
            {"within": "corpus", "layers": [3, 4]}, {"within": "corpus", "layers": [2, 3, 4]},
            {"within": "corpus", "layers": [1, 2, 3, 4]}, {"within": "corpus", "layers": [2, 3, 4, 5]},
            {"within": "corpus", "layers": [2, 3, 4], "C": 1.0},
            # Added in the session of 2026-12-07 (the ten above are the earlier screen's).
            {"within": "corpus", "classes": "four"}, {"within": "corpus", "statistics": "mean"},
            {"within": "corpus", "layers": [2, 3, 4, 5], "classes": "four"},
            # Added in the session of 2026-12-07 (third): augmented copies on the training side (item 6).
            {"within": "corpus", "layers": [2, 3, 4, 5], "copies": True},
            # Added in the session of 2026-12-07 (fourth), on the padded cache: the single-recording gap.
            {"within": "corpus", "layers": [2, 3, 4, 5], "nuisance": 8},
            {"within": "corpus", "layers": [2, 3, 4, 5], "nuisance": 24},
            {"within": "corpus", "layers": [2, 3, 4, 5], "single_view": True},
            {"within": "corpus", "layers": [2, 3, 4, 5], "instance": True},
            {"within": "corpus", "layers": [2, 3, 4, 5], "group_view": True},
            {"within": "corpus", "layers": [2, 3, 4, 5], "swap_view": True}]


def group_means(features: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each row's group as a row of the means, each group's mean), groups in sorted order."""
    _, position = np.unique(groups, return_inverse=True)
    return position, np.stack([features[position == i].mean(0) for i in range(position.max() + 1)])


def swap_view(features: np.ndarray, speakers: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each row moved from its speaker's mean to that of a speaker drawn at random (seeded)."""
    position, means = group_means(features, speakers)
    drawn = np.random.default_rng(seed).integers(len(means), size=len(features))
    return features - means[position] + means[drawn]


def group_view(features: np.ndarray, corpora: np.ndarray, prior: dict, seed: int = 0) -> np.ndarray:
    """Each corpus's rows standardized in seeded random groups of 1, 5, 10, 20, 50 (in turn), each on its own
    statistics shrunk towards `prior` as `ser predict --adapt` shrinks a group's."""
    out = np.empty_like(features)
    generator = np.random.default_rng(seed)
    for corpus in np.unique(corpora):
        rows = generator.permutation(np.flatnonzero(corpora == corpus))
        start, turn = 0, 0
        while start < len(rows):
            group = rows[start:start + (1, 5, 10, 20, 50)[turn % 5]]
            own = {"mean": features[group].mean(0), "std": features[group].std(0)}
            shrunk = shrunk_statistics(own, prior, len(group), 5)
            out[group] = (features[group] - np.asarray(shrunk["mean"])) / (np.asarray(shrunk["std"]) + 1e-6)
            start, turn = start + len(group), turn + 1
    return out


def nuisance_projection(features: np.ndarray, speakers: np.ndarray, directions: int) -> np.ndarray:
    """I - V V^T, V the leading `directions` principal axes of the speakers' mean vectors (centered)."""
    _, means = group_means(features, speakers)
    _, _, axes = np.linalg.svd(means - means.mean(0), full_matrices=False)
    leading = axes[:directions].T
    return np.eye(features.shape[1], dtype=features.dtype) - leading @ leading.T


def standardized_within(values: np.ndarray, groups: np.ndarray, copies: np.ndarray | None = None,
                        copy_groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Each group standardized on its own rows' statistics; `copies` on their clip's group's, as
    ser.adaptation takes a group's statistics from its original clips only."""
    out = np.empty_like(values)
    out_copies = None if copies is None else np.empty_like(copies)
    for group in np.unique(groups):
        rows = groups == group
        mean, std = values[rows].mean(0), values[rows].std(0) + 1e-6
        out[rows] = (values[rows] - mean) / std
        if copies is not None:
            copy_rows = copy_groups == group
            out_copies[copy_rows] = (copies[copy_rows] - mean) / std
    return out, out_copies


def whitener(z: np.ndarray, shrink: float):
    """x -> (R + shrink I)^(-1/2) x, R = V diag(e) V^T the correlations of the standardized rows `z`
    (correlation alignment, Sun et al. 2016). `shrink` weighs the identity: large, it leaves x as it is
    (up to scale)."""
    _, singular, axes = np.linalg.svd(z, full_matrices=False)
    scale = 1 / np.sqrt(singular ** 2 / len(z) + shrink) - 1 / np.sqrt(shrink)
    return lambda x: x / np.sqrt(shrink) + ((x @ axes.T) * scale) @ axes


def whitened_within(values: np.ndarray, groups: np.ndarray, shrink: float) -> np.ndarray:
    """Each group standardized, then whitened on its own correlations (`whitener`)."""
    out = standardized_within(values, groups)[0]
    for group in np.unique(groups):
        rows = groups == group
        out[rows] = whitener(out[rows], shrink)(out[rows])
    return out


def em_priors(probabilities: np.ndarray, training_prior: np.ndarray, iterations: int = 50) -> np.ndarray:
    prior = training_prior.copy()
    for _ in range(iterations):
        adjusted = probabilities * (prior / training_prior)
        adjusted /= adjusted.sum(1, keepdims=True)
        if np.abs(adjusted.mean(0) - prior).max() < 1e-6:
            break
        prior = adjusted.mean(0)
    return adjusted


def four_class_ua(features, clips, labels, training, tested, variant, copies=None) -> dict:
    """Batch-adapted and single-recording 4-class UA of `tested` clips, trained on `training` ones (and, with
    the variant's `copies`, on the augmented copies of those clips: `copies` is (features, source clip row))."""
    within = clips[variant.get("within", "corpus")].to_numpy()
    if variant.get("nuisance", 0):
        # In the training side's pooled units, so that no dimension's scale decides the axes.
        centre, scale = features[training].mean(0), features[training].std(0) + 1e-6
        projection = nuisance_projection((features[training] - centre) / scale,
                                         clips["speaker"].to_numpy()[training], variant["nuisance"])
        features = ((features - centre) / scale) @ projection
        if copies is not None:
            copies = (((copies[0] - centre) / scale) @ projection, copies[1])
    copy_features = copy_source = None
    if variant.get("copies", False):
        on_training_side = training[copies[1]]
        copy_features, copy_source = copies[0][on_training_side], copies[1][on_training_side]
    tested_corpora = clips["corpus"].to_numpy()[tested]
    pooled_mean, pooled_std = features[training].mean(0), features[training].std(0) + 1e-6
    pooled = lambda rows: (features[rows] - pooled_mean) / pooled_std  # noqa: E731  as one recording is scored
    if variant.get("whiten"):
        if copy_features is not None:
            raise SystemExit("a variant with whiten cannot also train on copies (their whitening is not defined here)")
        # Whitened within the same groups; one recording with the pooled training side's correlations.
        shrink = variant["whiten"]
        train, train_copies = whitened_within(features[training], within[training], shrink), None
        batch = whitened_within(features[tested], tested_corpora, shrink)
        standardized, pooled_whitener = pooled, whitener(pooled(training), shrink)
        pooled = lambda rows: pooled_whitener(standardized(rows))  # noqa: E731
    else:
        train, train_copies = standardized_within(features[training], within[training], copy_features,
                                                  None if copy_source is None else within[copy_source])
        batch = standardized_within(features[tested], tested_corpora)[0]
    mean, std = train.mean(0), train.std(0) + 1e-6
    views = {"batch": (batch - mean) / std, "single": (pooled(tested) - mean) / std}
    model = LogisticRegression(C=variant.get("C", 0.01), max_iter=300, class_weight="balanced")
    targets = labels[training]
    if train_copies is not None:
        train = np.concatenate([train, train_copies])
        targets = np.concatenate([targets, labels[copy_source]])
    # Second views of the training rows, each with the rows' own labels.
    second_views = []
    if variant.get("single_view", False):
        second_views.append(pooled(training))
    if variant.get("swap_view", False):
        second_views.append(swap_view(pooled(training), clips["speaker"].to_numpy()[training]))
    if variant.get("group_view", False):
        second_views.append(group_view(features[training], clips["corpus"].to_numpy()[training],
                                       {"mean": pooled_mean, "std": pooled_std}))
    train = np.concatenate([train, *second_views])
    targets = np.concatenate([targets] + [labels[training]] * len(second_views))
    kept = np.ones(len(targets), dtype=bool)
    if variant.get("classes", "all") == "four":
        targets = np.where(targets == EMOTIONS.index("calm"), EMOTIONS.index("neutral"), targets)
        kept = np.isin(targets, [EMOTIONS.index(name) for name in FOUR_CLASSES])
    model.fit(((train - mean) / std)[kept], targets[kept])
    scores = {}
    for mode, view in views.items():
        probabilities = np.zeros((int(tested.sum()), len(EMOTIONS)))
        probabilities[:, model.classes_] = model.predict_proba(view)
        if mode == "batch" and variant.get("prior") == "em":
            training_prior = np.full(len(EMOTIONS), 1e-9)
            training_prior[model.classes_] = 1 / len(model.classes_)
            probabilities = em_priors(probabilities + 1e-12, training_prior)
        result = cross_corpus_scores(probabilities, [EMOTIONS[a] for a in labels[tested]])
        scores[mode] = round(100 * result["four_class"]["balanced_accuracy"], 2)
    return scores


def screen(cache: np.ndarray, clips: pd.DataFrame, variant: dict, copy_cache=None, copy_source=None) -> dict:
    def chosen(block):
        states = variant.get("layers", "all")
        block = block if states == "all" else block[:, states]
        if variant.get("statistics", "both") == "mean":
            block = block[:, :, :1]
        if variant.get("instance", False):
            block = (block - block.mean(-1, keepdims=True)) / (block.std(-1, keepdims=True) + 1e-6)
        return block.reshape(len(block), -1).astype(np.float32)

    features = chosen(cache)
    copies = None
    if variant.get("copies", False):
        if copy_cache is None or not len(copy_cache):
            raise SystemExit("a variant with copies needs a cache with augmented copies "
                             "(archs.whisper_mlp.train.augmented_copies=true)")
        copies = (chosen(copy_cache), copy_source)
    labels = clips["emotion"].map(EMOTIONS.index).to_numpy()
    corpora = sorted(clips["corpus"].unique())
    result = {}
    for outer in corpora:
        others = [c for c in corpora if c != outer]
        side = lambda names: clips["corpus"].isin(names).to_numpy()  # noqa: E731
        inner = [four_class_ua(features, clips, labels, side([c for c in others if c != held]), side([held]), variant,
                               copies) for held in others]
        result[outer] = {"outer": four_class_ua(features, clips, labels, side(others), side([outer]), variant, copies),
                         "inner": {mode: round(float(np.mean([i[mode] for i in inner])), 2) for mode in ("batch", "single")}}
    return result


def nested(results: list[dict]) -> dict:
    """Each corpus scored with the variant its inner screen ranked first (batch UA), and which one that was."""
    corpora = sorted(results[0]["corpora"])
    chosen = {c: max(results, key=lambda r: r["corpora"][c]["inner"]["batch"]) for c in corpora}
    scores = {mode: round(float(np.mean([chosen[c]["corpora"][c]["outer"][mode] for c in corpora])), 2)
              for mode in ("batch", "single")}
    return {"chosen": {c: chosen[c]["variant"] for c in corpora}, "four_class_ua": scores}


def screen_clips(features_dir: str, manifest_path: str):
    """What every screen reads from the leave-one-corpus-out workspace: the cache rows of the original clips the
    protocol uses (RAVDESS's speech, every clip of the others) and their manifest rows, plus the augmented copies
    of those clips with each copy's source as a row of the clips (empty where the cache holds no copies)."""
    cache, index, _ = load_feature_cache(features_dir)
    manifest = pd.read_parquet(manifest_path).set_index("clip_id")
    original = (index["copy"] == 0).to_numpy()
    clips = manifest.loc[index["clip_id"][original]].reset_index()
    speech = ((clips["corpus"] != "ravdess") | (clips["vocal_channel"] == "speech")).to_numpy()
    if clips["corpus"].nunique() < 3:
        raise SystemExit(f"{features_dir}: needs the cache of at least 3 corpora (run the leave_one_corpus_out "
                         f"experiment first); it holds {sorted(clips['corpus'].unique())}")
    # A copy's source as a row of `clips` (the speech originals), -1 where its source is not one of them.
    position = pd.Series(np.arange(int(speech.sum())), index=clips["clip_id"][speech].to_numpy())
    copy_source = index["clip_id"][~original].map(position).fillna(-1).astype(int).to_numpy()
    copy_cache = np.asarray(cache)[~original][copy_source >= 0]
    copy_source = copy_source[copy_source >= 0]
    return np.asarray(cache)[original][speech], clips[speech].reset_index(drop=True), copy_cache, copy_source


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", default="data/features")
    parser.add_argument("--manifest", default="data/manifest.parquet")
    parser.add_argument("--variants", default=json.dumps(VARIANTS), help="a JSON list of variants")
    parser.add_argument("--out", default="reports/benchmarks/loco_screen.json")
    args = parser.parse_args()
    cache, clips, copy_cache, copy_source = screen_clips(args.features, args.manifest)
    results = []
    for variant in tqdm(json.loads(args.variants), desc="variants"):
        started = time.perf_counter()
        corpora = screen(cache, clips, variant, copy_cache, copy_source)
        results.append({"variant": variant, "seconds": round(time.perf_counter() - started, 1), "corpora": corpora,
                        **{f"{side}_mean": {mode: round(float(np.mean([corpora[c][side][mode] for c in corpora])), 2)
                                            for mode in ("batch", "single")} for side in ("outer", "inner")}})
        print(json.dumps(variant), results[-1]["inner_mean"], results[-1]["outer_mean"], flush=True)
    write_json(Path(args.out), {"machine": describe_machine("cpu"), "commit": current_commit(), "clips": len(clips),
                                "features": args.features, "variants": results,
                                "nested": nested(results)})


if __name__ == "__main__":
    main()
