"""The README's results tables, generated from the kept results in reports/results/<protocol>/<arch>.json
(and, for other corpora, reports/results/cross_corpus/<corpus>/<protocol>_<arch>.json).

    python -m ser.results           # rewrite the tables in README.md and docs/experiments.md
    python -m ser.results --check   # exit 1 if either is not what the kept results say

`evaluate` keeps each run's metrics there (see dvc.yaml); committing the file
of an experiment is what puts its numbers in the README.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from .io import atomic_path, read_json
from .reproduce import CI_REDERIVES

# What each arch's seed document reports on its own random 80/20 split (../shared/seeds/).
SEED_REPORTED = {
    "cnn_bilstm_attn": ("000", "acc 86.55, F1 86.68"),
    "whisper_mlp": ("001", "acc 88.59, F1 88.96"),
    "deep_cnn": ("002", "acc 82.50, F1 82.29"),
    "cnn_gru_attn": ("003", "acc 83"),
    "cnn_bilstm_attn_logmel": ("004", "none reported"),
}

# Published speaker-independent numbers on 8-class RAVDESS speech (../shared/DESIGN.md).
KFOLD_ANCHORS = [
    ("XLSR-53 wav2vec2, fine-tuned", "5 folds by actor", "accuracy 81.82 ± 1.99"),
    ("Whisper-large-v3, frozen (EmoBox)", "EmoBox 6 folds of 4 actors", "UA 75.32, accuracy 75.87"),
    ("WavLM-large, frozen (EmoBox)", "EmoBox 6 folds of 4 actors", "UA 72.00, accuracy 72.22"),
    ("HuBERT-large, frozen (EmoBox)", "EmoBox 6 folds of 4 actors", "UA 70.00, accuracy 70.29"),
]


def percent(value: float) -> str:
    return f"{100 * value:.2f}"


def repeats_in(result: dict) -> int:
    return int(result.get("repeats", 1))


def spread(result: dict, key: str) -> str:
    """`mean ± std` over repeats, or the value of a single run, which has no spread."""
    if repeats_in(result) < 2:
        return percent(result[key])
    return f"{percent(result[key])} ± {percent(result[f'{key}_std'])}"


def interval(result: dict, key: str) -> str:
    if repeats_in(result) < 2:  # a GPU run stays single until a GPU is at hand again: the cell says which kind it is
        return "one run, on a GPU: none" if result.get("device", "cpu") != "cpu" else "one run: none"
    bounds = result[f"{key}_ci95"]
    return f"{percent(bounds['low'])}–{percent(bounds['high'])}"


def epochs(result: dict) -> str:
    """Epochs run, and the range of best epochs over the runs."""
    run_epochs = sorted({run["epochs_run"] for run in result["runs"]})
    best = [run["best_epoch"] for run in result["runs"]]
    chosen = str(best[0]) if min(best) == max(best) else f"{min(best)}–{max(best)}"
    return f"{'/'.join(map(str, run_epochs))} ({chosen})"


def minutes(seconds) -> str:
    return "?" if seconds is None else f"{seconds / 60:.1f} min"


def random_table(results: dict[str, dict], ci_archs: set[str]) -> str:
    lines = ["| arch | runs | accuracy | macro F1 | balanced acc. | 95 % interval (accuracy) | epochs (best) "
             "| training | machine | commit | seed reported | CI re-derives |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for arch, result in sorted(results.items()):
        seed, reported = SEED_REPORTED.get(arch, ("?", "?"))
        lines.append(f"| `{arch}` | {repeats_in(result)} | {spread(result, 'accuracy')} "
                     f"| {spread(result, 'macro_f1')} | {spread(result, 'balanced_accuracy')} "
                     f"| {interval(result, 'accuracy')} | {epochs(result)} "
                     f"| {minutes(result.get('train_seconds'))} | {result['machine']} | `{result['commit']}` "
                     f"| {reported} ({seed}) | {'yes' if arch in ci_archs else 'no'} |")
    return "\n".join(lines + ["", comparison_table(results, "accuracy")])


def kfold_table(results: dict[str, dict], ci_archs: set[str]) -> str:
    lines = ["| arch | runs | accuracy | UA (balanced acc.) | macro F1 | 95 % interval (UA) | UA spread over folds "
             "| folds | epochs (best) | tested / trained on | machine | commit | CI re-derives |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for arch, result in sorted(results.items()):
        lines.append(f"| `{arch}` | {repeats_in(result)} | {spread(result, 'accuracy')} "
                     f"| {spread(result, 'balanced_accuracy')} | {spread(result, 'macro_f1')} "
                     f"| {interval(result, 'balanced_accuracy')} | {percent(result['balanced_accuracy_fold_std'])} "
                     f"| {result['folds_per_repeat']} | {epochs(result)} "
                     f"| {result['test_subset']} / {result['train_subset']} | {result['machine']} "
                     f"| `{result['commit']}` | {'yes' if arch in ci_archs else 'no'} |")
    lines += ["", comparison_table(results, "balanced_accuracy")]
    lines += ["", "| published anchor | protocol | reported |", "|---|---|---|"]
    lines += [f"| {name} | {protocol} | {value} |" for name, protocol, value in KFOLD_ANCHORS]
    return "\n".join(lines)


def compare(first: dict, second: dict, key: str) -> tuple[float, float | None, str]:
    """(difference of the means, p-value or None, how it was tested) of two kept results.

    Both repeated: Welch's t-test over their repeats. One a single run: that
    run taken as one more draw from the other's distribution (a prediction
    interval: it assumes its seeds would spread alike). Both single: no test.
    """
    difference = first[key] - second[key]
    samples = [[row[key] for row in result.get("per_repeat", [])] for result in (first, second)]
    if min(len(sample) for sample in samples) >= 2:
        if np.std(samples[0]) == 0 and np.std(samples[1]) == 0:
            return difference, 0.0 if difference else 1.0, "Welch"
        return difference, float(stats.ttest_ind(*samples, equal_var=False).pvalue), "Welch"
    if max(len(sample) for sample in samples) < 2:
        return difference, None, ""
    repeated = max(samples, key=len)
    spread = np.std(repeated, ddof=1) * np.sqrt(1 + 1 / len(repeated))
    if spread == 0:
        return difference, 0.0 if difference else 1.0, "one run"
    p = 2 * stats.t.sf(abs(difference) / spread, len(repeated) - 1)
    return difference, float(p), "one run"


def comparison_table(results: dict[str, dict], key: str) -> str:
    """Every pair of kept results, best first: is their difference larger than their spread over repeats?"""
    name = "UA" if key == "balanced_accuracy" else key.replace("_", " ")
    lines = [f"| compared ({name}) | difference | test | larger than the spread? |", "|---|---|---|---|"]
    ranked = sorted(results.items(), key=lambda item: -item[1][key])
    for i, (better, first) in enumerate(ranked):
        for worse, second in ranked[i + 1:]:
            difference, p, how = compare(first, second, key)
            if p is None:
                test, verdict = "—", "can't tell: one run each"
            elif how == "Welch":
                test, verdict = f"Welch's t, p = {p:.3f}", "yes" if p < 0.05 else "no"
            else:
                test = f"one run against the other's repeats, p = {p:.3f}"
                verdict = "yes, if its seeds spread alike" if p < 0.05 else "no"
            lines.append(f"| `{better}` − `{worse}` | {100 * difference:+.2f} | {test} | {verdict} |")
    return "\n".join(lines)


# Published cross-corpus numbers, trained on RAVDESS (../shared/DESIGN.md): EmoBox's 4 classes, accuracy
# on class-balanced test sets, which is the mean recall (UA) there.
CROSS_CORPUS_ANCHORS = [
    ("Whisper-large-v3, frozen (EmoBox)", "RAVDESS → SAVEE", "4-class 66.91"),
    ("WavLM-large, frozen (EmoBox)", "RAVDESS → SAVEE", "4-class 63.35"),
    ("HuBERT-large, frozen (EmoBox)", "RAVDESS → SAVEE", "4-class 56.96"),
]


def cross_corpus_table(results: dict[str, dict], ci_archs: set[str]) -> str:
    lines = ["| corpus | model: protocol, arch | runs | standardized on | 4-class UA | 4-class accuracy "
             "| shared-class UA | shared accuracy | shared macro F1 | files (left out) | machine | commit |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, result in sorted(results.items()):
        four, shared = result["four_class"], result["shared"]
        left_out = ", ".join(f"{n} {label}" for label, n in sorted(result["left_out"].items())) or "none"
        lines.append(f"| {result['corpus']} | {result['protocol']}, `{result['arch']}` | {result['runs']} "
                     f"| {result['standardized_on']} | {percent(four['balanced_accuracy'])} "
                     f"| {percent(four['accuracy'])} | {percent(shared['balanced_accuracy'])} "
                     f"| {percent(shared['accuracy'])} | {percent(shared['macro_f1'])} "
                     f"| {result['files']} ({left_out}) | {result['machine']} | `{result['commit']}` |")
    lines += ["", "| published anchor | corpora | reported |", "|---|---|---|"]
    lines += [f"| {name} | {corpora} | {value} |" for name, corpora, value in CROSS_CORPUS_ANCHORS]
    return "\n".join(lines)


def states(layers) -> str:
    """The Whisper states a model read, for a table's label: "" for every state, else e.g. "states 2–5, "."""
    if layers in (None, "all"):
        return ""
    if not isinstance(layers, list):  # "last"
        return f"states {layers}, "
    if len(layers) > 2 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"states {layers[0]}–{layers[-1]}, "
    return f"states {', '.join(map(str, layers))}, "


def padding(value) -> str:
    """How a Whisper model's clips were encoded, for a table's label: "" at their own length (the default)."""
    return {None: "", "none": "", "window": "padded to 30 s, ", "clip_frames": "padded to 30 s, own frames, "}[value]


def statistics(result: dict) -> str:
    """Which statistics over frames a model read, for a table's label: "" for the default mean and std."""
    return "means only, " if result.get("statistics") == ["mean"] else ""


def members(result: dict) -> str:
    """Which of whisper_mlp's members predict, for a table's label: "" where both do, equally (or unrecorded)."""
    share = result.get("logistic_share")
    if share is None or share == 0.5:
        return ""
    if share == 1:
        return f"logistic member alone (C = {result['logistic_c']:g}), "
    return f"logistic member's share {share:g} (C = {result['logistic_c']:g}), "


def corpus_holdout_table(results: dict[str, dict], ci_archs: set[str]) -> str:
    """Leave one corpus out: each corpus's 4-class and shared-class UA, batch-adapted and one recording at a
    time, mean ± std over repeats, and the mean over corpora (a repeat's mean over its corpora)."""
    lines = ["| model | left-out corpus | files | 4-class UA, batch-adapted | 4-class UA, one recording "
             "| shared-class UA, batch-adapted | shared-class UA, one recording |",
             "|---|---|---|---|---|---|---|"]

    def cell(entry: dict, key: str) -> str:
        return f"{percent(entry[key])} ± {percent(entry[key + '_std'])}"

    for arch, result in sorted(results.items()):
        view = " + single-recording view" if result.get("single_view") else ""
        model = f"`{arch}`, {members(result)}{states(result.get('layers', 'all'))}{statistics(result)}" \
                f"{padding(result.get('padding'))}" \
                f"within {result['standardize_within']}{view}, {result['repeats']} repeats"
        for corpus, entry in result["corpora"].items():
            batch, single = entry["batch"], entry["single"]
            lines.append(f"| {model} | {corpus} | {batch['n']} | {cell(batch, 'four_class_ua')} "
                         f"| {cell(single, 'four_class_ua')} | {cell(batch, 'shared_ua')} | {cell(single, 'shared_ua')} |")
        batch, single = result["batch"], result["single"]
        lines.append(f"| {model} | **mean over corpora** | | **{cell(batch, 'four_class_ua')}** "
                     f"| **{cell(single, 'four_class_ua')}** | {cell(batch, 'shared_ua')} | {cell(single, 'shared_ua')} |")
    machines = "; ".join(f"`{arch}`: {result['machine']}, commit `{result['commit']}`"
                         for arch, result in sorted(results.items()))
    lines += ["", f"Measured on: {machines}.", "", "| published anchor | corpora | reported |", "|---|---|---|"]
    lines += [f"| {name} | {corpora} | {value} |" for name, corpora, value in CROSS_CORPUS_ANCHORS]
    return "\n".join(lines)


TABLES = {"random": random_table, "actor_kfold": kfold_table, "cross_corpus": cross_corpus_table,
          "leave_one_corpus_out": corpus_holdout_table}


def kept_results(root: str | Path, protocol: str) -> dict[str, dict]:
    """The kept results of one protocol by arch, or, for cross_corpus, by `<corpus>/<protocol>_<arch>`."""
    if protocol == "cross_corpus":
        return {f"{path.parent.name}/{path.stem}": read_json(path)
                for path in sorted(Path(root, protocol).glob("*/*.json"))}
    return {path.stem: read_json(path) for path in sorted(Path(root, protocol).glob("*.json"))}


def render(readme: str, root: str | Path = "reports/results", ci_rederives=CI_REDERIVES) -> str:
    """README text with every `<!-- results:<protocol> -->` block replaced by its table."""
    for protocol, table in TABLES.items():
        start, end = f"<!-- results:{protocol} -->", f"<!-- /results:{protocol} -->"
        if start not in readme:
            continue
        head, rest = readme.split(start, 1)
        if end not in rest:
            raise ValueError(f"README: {start} has no closing {end}")
        tail = rest.split(end, 1)[1]
        ci_archs = {arch for ci_protocol, arch in ci_rederives if ci_protocol == protocol}
        readme = f"{head}{start}\n{table(kept_results(root, protocol), ci_archs)}\n{end}{tail}"
    return readme


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", nargs="+", default=["README.md", "docs/experiments.md"],
                        help="the files whose results blocks are generated")
    parser.add_argument("--results", default="reports/results")
    parser.add_argument("--check", action="store_true", help="fail if the README's tables are out of date")
    args = parser.parse_args(argv)
    stale = []
    for readme in args.readme:
        current = Path(readme).read_text()
        wanted = render(current, args.results)
        if wanted == current:
            continue
        if args.check:
            stale.append(readme)
            continue
        with atomic_path(readme, suffix=".md") as tmp:
            Path(tmp).write_text(wanted)
    for readme in stale:
        print(f"{readme}: results tables differ from {args.results}; run `python -m ser.results`", file=sys.stderr)
    return 1 if stale else 0

if __name__ == "__main__":
    sys.exit(main())
