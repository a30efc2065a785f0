"""How much of whisper_mlp's average each member should carry, chosen by nested leave-one-corpus-out (issue 30).

    python benchmarks/member_weight_screen.py [--weights 0,0.25,0.5,0.75,1] [--c 0.01,0.0003]
                                              [--out reports/benchmarks/member_weight_screen.json]

Run in the workspace of the leave-one-corpus-out experiment (its params.yaml, feature cache and manifest).
loco_screen.py ranks variants with the logistic member alone; this screen trains the whole model, as the
train stage does (one repeat: the first repeat's seeds), so that the MLP's share can be chosen too.

For each corpus X (outer) the model trains on the others and scores X; inner, the same over those others
alone, each left out in turn (their own leave-one-corpus-out split, validation speakers drawn as the
pipeline draws them), X never read. Each trained model gives both members' class probabilities on its
tested corpus, batch-adapted and one recording at a time, and the logistic member is fitted again at
each `--c` on the rows it trained on; a weight w scores w x logistic + (1 - w) x MLP (0.5 is the model
today). A (C, w) is chosen for X on its inner mean of the two modes, so the nested estimate has not
looked at X.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import dataclasses
import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ser.adaptation import effective_within, model_view, record_adaptation, training_views
from ser.checkpoint import restore_model
from ser.config import as_plain, load_params
from ser.corpus import EMOTIONS
from ser.cross_corpus import cross_corpus_scores
from ser.evaluation import current_commit, describe_machine
from ser.features import load_feature_cache
from ser.inference import partition_logits
from ser.io import write_json
from ser.rows import final_model_rows
from ser.runtime import pick_device, set_torch_threads
from ser.split import assign_corpus_folds, repeat_seed
from ser.training import start_fit, train_model

MODES = ("batch", "single")


class Member(nn.Module):
    """One member of a trained whisper_mlp, as a network of its own: its logits alone."""

    def __init__(self, model: nn.Module, which: str):
        super().__init__()
        self.model, self.which = model, which

    def forward(self, features):
        return self.model.network_logits(features) if self.which == "mlp" else self.model.logistic_logits(features)


def member_probabilities(params, features, index, recipe, assignment, device, cs) -> dict:
    """Train one run as the train stage does; each member's probabilities on its tested clips in both modes
    ({mode: {"actual", "mlp", "logistic@C"...}}), the logistic member refitted at every C of `cs`."""
    arch, arch_params = params.arch
    per = recipe["standardize"]
    within = effective_within(params.adaptation.within, assignment)
    view, second_view = training_views(features, index, assignment, within, arch_params.train, per,
                                       params.adaptation.single_view)
    state, card = train_model(arch, arch_params, view, index, assignment, feature_recipe=recipe,
                              seed=repeat_seed(params.train.seed, 1), batch_size=params.train.batch_size,
                              device=device, standardize_per=per, progress=False, second_view=second_view)
    card = record_adaptation(card, features, index, assignment, arch_params.train, within,
                             params.adaptation.prior_files, per)
    model = restore_model(card, state, device)
    # The kept model's own rows, views and standardization (start_fit), so that its member refits as it was fitted.
    fit = dataclasses.replace(start_fit(arch, arch_params, view, index, assignment,
                                        final_model_rows(index, assignment, arch_params.train), seed=0,
                                        standardize_per=per, device=device, second_view=second_view), model=model)
    views = {"batch": model_view(features, index, assignment, card, per), "single": (features, card.standardization)}
    out = {mode: {} for mode in MODES}
    trained = model.logistic_weight.clone()
    fit.after_training(arch_params.train)
    if not torch.equal(trained, model.logistic_weight):  # the rows rebuilt here are the ones the member saw
        raise RuntimeError("the logistic member refitted on the rebuilt rows differs from the trained one")
    for c in cs:
        model.logistic_c = float(c)
        fit.after_training(arch_params.train)
        for mode, (array, standardization) in views.items():
            _, actual, logits = partition_logits(Member(model, "logistic"), array, index, assignment, standardization,
                                                 device)
            out[mode]["actual"] = actual
            out[mode][f"logistic@{c}"] = torch.softmax(logits, 1).numpy()
    for mode, (array, standardization) in views.items():
        _, _, logits = partition_logits(Member(model, "mlp"), array, index, assignment, standardization, device)
        out[mode]["mlp"] = torch.softmax(logits, 1).numpy()
    return out


def four_class_ua(probabilities: dict, c: float, weight: float) -> dict:
    scores = {}
    for mode in MODES:
        own = probabilities[mode]
        blend = weight * own[f"logistic@{c}"] + (1 - weight) * own["mlp"]
        result = cross_corpus_scores(blend, [EMOTIONS[a] for a in own["actual"]])
        scores[mode] = round(100 * result["four_class"]["balanced_accuracy"], 2)
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", default="data/features")
    parser.add_argument("--manifest", default="data/manifest.parquet")
    parser.add_argument("--weights", default="0,0.25,0.5,0.75,1", help="the logistic member's shares to score")
    parser.add_argument("--c", default="0.01,0.0003", help="the logistic member's C values to fit")
    parser.add_argument("--params", default="params.yaml", help="the experiment's params (a copy with a variant's values)")
    parser.add_argument("--out", default="reports/benchmarks/member_weight_screen.json")
    args = parser.parse_args()
    params = load_params(args.params)
    if params.split.protocol != "leave_one_corpus_out" or params.arch[0] != "whisper_mlp":
        raise SystemExit("params.yaml: run in the workspace of a leave_one_corpus_out experiment of whisper_mlp")
    set_torch_threads(params.cores)
    device = pick_device(params.train.device)
    features, index, recipe = load_feature_cache(args.features)
    manifest = pd.read_parquet(args.manifest)
    corpora = list(params.split.leave_one_corpus_out.corpora)
    weights = [float(w) for w in args.weights.split(",")]
    cs = [float(c) for c in args.c.split(",")]
    grid = list(itertools.product(cs, weights))
    options = params.split.leave_one_corpus_out
    seed = repeat_seed(params.split.seed, 1)

    def scored(trained_on: list[str], tested: str) -> dict:
        split = assign_corpus_folds(manifest, [*trained_on, tested], subset=options.subset,
                                    validation_fraction=params.split.validation_fraction, seed=seed)
        assignment = split[split["fold"] == len(trained_on) + 1].reset_index(drop=True)
        probabilities = member_probabilities(params, features, index, recipe, assignment, device, cs)
        return {f"C={c} w={w}": four_class_ua(probabilities, c, w) for c, w in grid}

    started = time.perf_counter()
    result = {}
    runs = [(outer, held) for outer in corpora for held in [None, *(c for c in corpora if c != outer)]]
    inner_scores = {}
    for outer, held in tqdm(runs, desc="runs"):
        others = [c for c in corpora if c != outer]
        if held is None:
            result[outer] = {"outer": scored(others, outer)}
        else:
            inner_scores.setdefault(outer, []).append(scored([c for c in others if c != held], held))
    for outer in corpora:
        result[outer]["inner"] = {name: {mode: round(float(np.mean([run[name][mode] for run in inner_scores[outer]])), 2)
                                         for mode in MODES} for name in result[outer]["outer"]}
    names = list(result[corpora[0]]["outer"])
    mean = lambda side, name: {mode: round(float(np.mean([result[c][side][name][mode] for c in corpora])), 2)  # noqa: E731
                               for mode in MODES}
    table = {name: {"inner": mean("inner", name), "outer": mean("outer", name)} for name in names}
    chosen = {c: max(names, key=lambda name: sum(result[c]["inner"][name].values())) for c in corpora}
    nested = {mode: round(float(np.mean([result[c]["outer"][chosen[c]][mode] for c in corpora])), 2) for mode in MODES}
    for name, row in table.items():
        print(name, row["inner"], row["outer"])
    print("nested:", chosen, nested)
    arch, arch_params = params.arch
    write_json(Path(args.out), {"machine": describe_machine("cpu"), "commit": current_commit(),
                                "params": {arch: as_plain(arch_params), "adaptation": as_plain(params.adaptation)},
                                "seconds": round(time.perf_counter() - started, 1), "corpora": result,
                                "means": table, "nested": {"chosen": chosen, "four_class_ua": nested},
                                "selection": "inner mean of batch and single 4-class UA"})


if __name__ == "__main__":
    main()
