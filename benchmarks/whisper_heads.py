"""Which Whisper states, statistics and head `whisper_mlp` should read: each variant trained and tested
under one protocol, over the protocol's repeats, on the pipeline's own feature cache and split code.

Every variant is `archs.whisper_mlp` with some `model` / `train` params changed, so
the winner is a params change (docs/experiments.md, "Whisper: every layer"). Needs the
`whisper_layers` feature cache (`dvc repro features` with the default params).

    python benchmarks/whisper_heads.py --protocol random --repeats 5
    python benchmarks/whisper_heads.py --protocol actor_kfold --repeats 2 --variants concat weighted_sum
    python benchmarks/whisper_heads.py --protocol actor_kfold -S split.actor_kfold.train_subset=speech --out ...

`-S` sets any param for the run, as `dvc exp run -S` does (over the variant's own settings too), and is
recorded in the report.
`--normalize` tries a normalization of the cached features before training's own standardization:
`clip_state` scales each clip's state vectors to zero mean and unit variance over their width (the
recipe's `normalize: clip`, for a cache encoded without it); `actor` standardizes every feature over
each actor's own clips, the test actors' included. That one is transductive: it needs several
unlabelled recordings of the test speaker.
`--ensemble K` trains K models per run (seeds seed, seed + 1000, ...) and scores their mean probabilities.
`--logistic-c C ...` also scores, per run, the same trained MLP with a logistic-regression member of each C
(`null`: the MLP alone), fitted on the rows the kept MLP trained on, and each member alone (the default's
C too): one MLP training serves every C.
`--partition validation` scores the validation clips instead of the test clips, to choose such a value
without the test folds; it needs `-S archs.whisper_mlp.train.refit=false` (a refit trains on them).
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import copy
import time

import numpy as np
import pandas as pd
import torch

from ser.checkpoint import restore_model
from ser.models import build_model
from ser.evaluation import SUMMARIZED, classification_metrics, describe_machine, repeated_summary
from ser.features import load_feature_cache
from ser.features.whisper import normalize_per_clip
from ser.io import read_json, write_json
from ser.params import load_params, set_param
from ser.split import make_split, repeat_seed, runs_of
from ser.training import (final_model_rows, fit_closed_form_members, fit_standardization, partition_logits,
                          pick_device, train_model, training_batches)

# name: (model params, train params) over archs.whisper_mlp's; each says whether it trains on the copies,
# so a variant means the same whatever the default is.
ALL_STATES = {"layers": "all", "statistics": ["mean", "std"]}
COPIES, NO_COPIES = {"augmented_copies": True}, {"augmented_copies": False}
VARIANTS = {
    "seed_last_mean": ({"layers": "last", "statistics": ["mean"]}, COPIES),
    "seed_last_mean_no_copies": ({"layers": "last", "statistics": ["mean"]}, NO_COPIES),
    "last_mean_std": ({"layers": "last", "statistics": ["mean", "std"]}, NO_COPIES),
    "concat_mean": ({"layers": "all", "statistics": ["mean"], "head": "concat"}, NO_COPIES),
    "concat": ({**ALL_STATES, "head": "concat"}, COPIES),
    "concat_no_copies": ({**ALL_STATES, "head": "concat"}, NO_COPIES),
    "weighted_sum": ({**ALL_STATES, "head": "weighted_sum"}, COPIES),
    "weighted_sum_no_copies": ({**ALL_STATES, "head": "weighted_sum"}, NO_COPIES),
}


def normalized(features: np.ndarray, index: pd.DataFrame, manifest: pd.DataFrame, how: str) -> np.ndarray:
    """The [clips, states, statistics, width] cache normalized per clip and state, or per actor."""
    values = np.asarray(features, dtype=np.float32)
    if how == "clip_state":
        return normalize_per_clip(values)
    actors = manifest.set_index("clip_id").loc[index["clip_id"], "actor"].to_numpy()
    for actor in np.unique(actors):
        rows = np.flatnonzero(actors == actor)
        own = fit_standardization(values, rows, per="element")  # training's own statistics, over one actor
        values[rows] = (values[rows] - np.asarray(own["mean"])) / np.asarray(own["std"])
    return values


def with_logistic_member(card: dict, state: dict, c: float | None, data, device):
    """The trained MLP of (`card`, `state`) with a logistic-regression member of C = `c` fitted on `data`
    (the kept rows), or alone for None."""
    model = build_model(card["arch"], card["input_shape"], len(card["labels"]),
                        **{**card["model_options"], "logistic_c": c})
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("logistic_")}, strict=False)
    if c is not None:
        fit_closed_form_members(model, data, card["standardization"], card["train_recipe"])
    return model.to(device).eval()


class LogisticMemberAlone(torch.nn.Module):
    """A model's logistic-regression member, scored without its MLP."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, features):
        return self.model.logistic_logits(features)


def summarized(scored: list[dict], seconds: float) -> dict:
    """A report entry's numbers for its runs (one dict per repeat and fold): mean and std over repeats,
    the std over folds where there are folds, each repeat's means."""
    summary = repeated_summary(scored, {})
    return {"runs": len(scored), "seconds_per_run": round(seconds / len(scored), 1),
            **{key: round(summary[key], 4) for key in SUMMARIZED},
            **{f"{key}_std": round(summary[f"{key}_std"], 4) for key in SUMMARIZED},
            **({f"{key}_fold_std": round(summary[f"{key}_fold_std"], 4) for key in SUMMARIZED}
               if "accuracy_fold_std" in summary else {}),
            "per_repeat": summary["per_repeat"]}


def print_summary(label: str, result: dict) -> None:
    print(f"{label:<24} accuracy {100 * result['accuracy']:.2f} ± {100 * result['accuracy_std']:.2f}  "
          f"UA {100 * result['balanced_accuracy']:.2f} ± {100 * result['balanced_accuracy_std']:.2f}  "
          f"macro F1 {100 * result['macro_f1']:.2f} ± {100 * result['macro_f1_std']:.2f}  "
          f"({result['runs']} runs, {result['seconds_per_run']} s each)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="random", choices=["random", "actor_holdout", "actor_kfold"])
    parser.add_argument("--repeats", type=int, default=None, help="default: split.repeats")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=None, help="default: reports/benchmarks/whisper_heads_<protocol>.json")
    parser.add_argument("--features", default="data/features",
                        help="the feature cache (one with the augmented copies for variants that train on them)")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a params override, as in `dvc exp run -S` (repeatable)")
    parser.add_argument("--ensemble", type=int, default=1, help="models per run, their probabilities averaged")
    parser.add_argument("--normalize", choices=["clip_state", "actor"], default=None,
                        help="normalize the cached features first (see above); recorded in the entry")
    parser.add_argument("--logistic-c", nargs="+", default=[], metavar="C",
                        help="also score each run's MLP with a logistic member of each C (null: alone)")
    parser.add_argument("--partition", choices=["test", "validation"], default="test",
                        help="the clips scored (validation: to choose a value without the test folds)")
    args = parser.parse_args()
    params = load_params()
    for assignment in args.set:
        set_param(params, assignment)
    split_params = {**params["split"], "protocol": args.protocol}
    if args.repeats:
        split_params["repeats"] = args.repeats
    features, index, recipe = load_feature_cache(args.features)
    if recipe["recipe"] != "whisper_layers":
        raise SystemExit(f"{args.features} holds {recipe['recipe']!r} features; this compares heads over "
                         f"whisper_layers (the default params)")
    manifest = pd.read_parquet("data/manifest.parquet")
    if args.normalize:
        features = normalized(features, index, manifest, args.normalize)
    runs = runs_of(make_split(manifest, split_params))
    device = pick_device(params["train"]["device"])
    out = args.out or f"reports/benchmarks/whisper_heads_{args.protocol}.json"
    try:
        report = read_json(out)  # variants measured before (with the same split) are kept
    except FileNotFoundError:
        report = {}
    report.update(machine=describe_machine(str(device)), protocol=args.protocol,
                  repeats=split_params["repeats"], feature_model=recipe["model"])
    report.setdefault("variants", {})
    cached_copies = bool(index["copy"].gt(0).any())
    for name in args.variants:
        model_params, train_params = VARIANTS[name]
        variant_params = copy.deepcopy(params)
        arch_params = variant_params["archs"]["whisper_mlp"]
        arch_params["model"].update(model_params)
        arch_params["train"].update(train_params)
        for assignment in args.set:  # a -S wins over the variant too, as over params.yaml
            set_param(variant_params, assignment)
        if arch_params["train"]["augmented_copies"] and not cached_copies:
            raise SystemExit(f"{name} trains on the augmented copies, which {args.features} does not hold: "
                             f"`dvc exp run -S archs.whisper_mlp.train.augmented_copies=true` encodes them "
                             f"into data/features")
        if args.partition == "validation" and arch_params["train"].get("refit"):
            raise SystemExit("--partition validation: the refit trains on the validation clips; "
                             "add -S archs.whisper_mlp.train.refit=false")
        # Each C's member is also scored alone, the default's C too (the entry without a suffix holds it).
        default_c = arch_params["model"].get("logistic_c")
        alone = [float(c) for c in args.logistic_c if c != "null"] + ([default_c] if args.logistic_c and default_c else [])
        members = {None: None, **{f"logistic_c={c}": None if c == "null" else float(c) for c in args.logistic_c},
                   **{f"logistic_c={c:g} alone": c for c in dict.fromkeys(alone)}}
        scored, started = {suffix: [] for suffix in members}, time.perf_counter()
        for (repeat, fold), assignment in runs.items():
            probabilities = dict.fromkeys(members, 0)
            kept_data = (training_batches(features, index, assignment,
                                          final_model_rows(index, assignment, arch_params["train"]))
                         if args.logistic_c else None)
            for member in range(args.ensemble):
                state, card = train_model("whisper_mlp", arch_params, features, index, assignment,
                                          seed=repeat_seed(params["train"]["seed"], repeat) + 1000 * member,
                                          batch_size=params["train"]["batch_size"], device=device,
                                          standardize_per=recipe["standardize"], progress=False)
                for suffix, c in members.items():
                    model = (restore_model(card, state, device) if suffix is None
                             else with_logistic_member(card, state, c, kept_data, device))
                    if suffix and suffix.endswith(" alone"):
                        model = LogisticMemberAlone(model)
                    _, actual, logits = partition_logits(model, features, index, assignment, card["standardization"],
                                                         device, partition=args.partition)
                    probabilities[suffix] = probabilities[suffix] + torch.softmax(logits, dim=1).numpy()
            for suffix in members:
                scores = classification_metrics(actual, probabilities[suffix].argmax(1))
                scored[suffix].append({"repeat": repeat, "fold": fold,
                                       **{k: scores[k] for k in (*SUMMARIZED, "n_test")}})
        seconds = time.perf_counter() - started
        for suffix in members:
            # a variant under other params, another normalization or member, or scored elsewhere, is another entry
            entry = " ".join([name, *args.set, *([f"normalize={args.normalize}"] if args.normalize else []),
                              *([f"ensemble={args.ensemble}"] if args.ensemble > 1 else []),
                              *([suffix] if suffix else []),
                              *([f"partition={args.partition}"] if args.partition != "test" else [])])
            report["variants"][entry] = {
                "model": model_params, "train": train_params, "params_set": args.set, "normalize": args.normalize,
                "ensemble": args.ensemble, "features": args.features, "machine": describe_machine(str(device)),
                "validation_by": split_params.get("validation_by", "clip") if args.protocol != "random" else "clip",
                **({"logistic_c": members[suffix], "partition": args.partition} if args.logistic_c else {}),
                **summarized(scored[suffix], seconds)}
            write_json(out, report)
            print_summary(entry, report["variants"][entry])

if __name__ == "__main__":
    main()
