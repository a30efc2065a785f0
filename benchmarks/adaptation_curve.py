"""4-class UA on each left-out corpus against the number of unlabeled recordings adapted on together.

    python benchmarks/adaptation_curve.py [--sizes 1 5 10 20 50] [--draws 3] [--out reports/benchmarks/adaptation_curve.json]

Reads what `dvc exp run -S split.protocol=leave_one_corpus_out` leaves in the workspace: the fold
models in models/, data/split.parquet and the feature cache. For each run, the tested corpus's clips
are dealt into groups of n, and each group is standardized on its own statistics (shrunk towards the
training corpora's, ser.adaptation) as `ser predict --adapt` does; n = 1 is one recording at a time.
Three ways of dealing, each `--draws` times with seeds 0, 1, ...:
- mixed: groups drawn at random, whatever their emotion (a user's folder);
- speaker: groups of n drawn within one speaker (a user's own recordings);
- one_emotion: groups of n clips of a single emotion, the case where a group's statistics carry the
  emotion itself and adaptation can remove it (natural speech, one mood per session).
The curve is the mean over runs (repeats) of each corpus's UA; the plot beside the JSON shows it.
Only labels of the scored clips are read, to score and to deal the one_emotion groups.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ser.adaptation import adapted_standardization
from ser.checkpoint import load_checkpoint, run_model_dir
from ser.corpus import EMOTIONS
from ser.cross_corpus import cross_corpus_scores
from ser.evaluation import describe_machine
from ser.features import load_feature_cache
from ser.io import write_json
from ser.split import run_names, runs_of
from ser.card import ModelCard
from ser.runtime import pick_device
from ser.standardization import fit_standardization, standardization_tensors, standardize

DEALINGS = ("mixed", "speaker", "one_emotion")


def deal(clips: pd.DataFrame, size: int, how: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Positions of `clips` in groups of `size` (the last of each pool may be smaller)."""
    if how == "mixed":
        pools = [np.arange(len(clips))]
    else:
        column = "speaker" if how == "speaker" else "emotion"
        pools = [np.flatnonzero((clips[column] == value).to_numpy()) for value in sorted(clips[column].unique())]
    groups = []
    for pool in pools:
        order = rng.permutation(pool)
        groups += [order[start:start + size] for start in range(0, len(order), size)]
    return groups


@torch.no_grad()
def group_probabilities(model, card: ModelCard, features: np.ndarray, groups: list[np.ndarray], device) -> np.ndarray:
    per = card.feature_recipe["standardize"]
    probabilities = np.zeros((len(features), len(EMOTIONS)))
    for group in groups:
        block = features[group]
        if len(group) == 1:  # one recording: the training statistics, as `ser predict` without --adapt
            standardization = card.standardization
        else:
            own = fit_standardization(block, np.arange(len(block)), per=per)
            standardization = adapted_standardization(card, own, files=len(group))
        x = standardize(torch.from_numpy(np.asarray(block, dtype=np.float32)).to(device),
                        standardization_tensors(standardization, device))
        probabilities[group] = torch.softmax(model.eval()(x), dim=1).cpu().numpy()
    return probabilities


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 10, 20, 50])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--models", default="models")
    parser.add_argument("--out", default="reports/benchmarks/adaptation_curve.json")
    args = parser.parse_args()
    device = pick_device("auto")
    features, index, _ = load_feature_cache("data/features")
    runs = runs_of(pd.read_parquet("data/split.parquet"))
    names = run_names(runs)
    manifest = pd.read_parquet("data/manifest.parquet").set_index("clip_id")
    scores = []
    for (repeat, fold), assignment in tqdm(runs.items(), desc="runs", unit="run"):
        model, card = load_checkpoint(run_model_dir(args.models, names[repeat, fold]), device=device)
        if "test_corpus" not in card.split:
            raise SystemExit(f"{args.models}: not leave_one_corpus_out models (run that experiment first)")
        tested = assignment[assignment["partition"] == "test"]
        rows = np.flatnonzero(index["clip_id"].isin(set(tested["clip_id"])).to_numpy() & (index["copy"] == 0).to_numpy())
        clips = pd.DataFrame({"clip_id": index["clip_id"].iloc[rows].to_numpy()})
        clips["emotion"] = clips["clip_id"].map(manifest["emotion"]).to_numpy()
        clips["speaker"] = clips["clip_id"].map(manifest["speaker"]).to_numpy()
        block = np.asarray(features[rows], dtype=np.float32)
        for how in DEALINGS:
            for size in args.sizes:
                for draw in range(args.draws if size > 1 else 1):
                    groups = deal(clips, size, how, np.random.default_rng([draw, size, fold]))
                    probabilities = group_probabilities(model, card, block, groups, device)
                    result = cross_corpus_scores(probabilities, list(clips["emotion"]))
                    scores.append({"repeat": repeat, "corpus": card.split["test_corpus"], "dealing": how,
                                   "files": size, "draw": draw,
                                   "four_class_ua": result["four_class"]["balanced_accuracy"],
                                   "shared_ua": result["shared"]["balanced_accuracy"]})
    frame = pd.DataFrame(scores)
    per_repeat = frame.groupby(["dealing", "files", "corpus", "repeat"])[["four_class_ua", "shared_ua"]].mean()
    curve = per_repeat.groupby(["dealing", "files", "corpus"]).agg(["mean", "std"])
    mean_over_corpora = per_repeat.groupby(["dealing", "files", "repeat"]).mean().groupby(["dealing", "files"]).agg(
        ["mean", "std"])
    summary = {how: {str(size): {
        "four_class_ua": float(mean_over_corpora.loc[(how, size), ("four_class_ua", "mean")]),
        "four_class_ua_std": float(np.nan_to_num(mean_over_corpora.loc[(how, size), ("four_class_ua", "std")])),
        "corpora": {corpus: float(curve.loc[(how, size, corpus), ("four_class_ua", "mean")])
                    for corpus in sorted(frame["corpus"].unique())}}
        for size in args.sizes} for how in DEALINGS}
    report = {"machine": describe_machine(device.type), "draws": args.draws, "sizes": args.sizes,
              "standardize_within": (card.adaptation or {}).get("within", "none"),
              "prior_files": (card.adaptation or {}).get("prior_files"), "curve": summary, "runs": scores}
    write_json(args.out, report)
    plot(summary, args.sizes, Path(args.out).with_suffix(".png"))
    for how in DEALINGS:
        line = ", ".join(f"{size}: {100 * summary[how][str(size)]['four_class_ua']:.2f}" for size in args.sizes)
        print(f"{how}: 4-class UA by files per group, mean over corpora: {line}")


def plot(summary: dict, sizes: list[int], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(DEALINGS), figsize=(15, 4.5), sharey=True, constrained_layout=True)
    for axis, how in zip(axes, DEALINGS):
        corpora = sorted(summary[how][str(sizes[0])]["corpora"])
        for corpus in corpora:
            axis.plot(sizes, [100 * summary[how][str(s)]["corpora"][corpus] for s in sizes], marker="o", label=corpus)
        axis.plot(sizes, [100 * summary[how][str(s)]["four_class_ua"] for s in sizes], marker="s", color="black",
                  linewidth=2.5, label="mean")
        axis.set_xscale("log")
        axis.set_xticks(sizes, [str(s) for s in sizes])
        axis.set_title(f"groups: {how.replace('_', ' ')}")
        axis.set_xlabel("unlabeled recordings adapted on together")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("4-class UA on the left-out corpus (%)")
    axes[0].legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
