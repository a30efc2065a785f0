"""How far the metrics move when the features change in their last bits, as they do
between CPUs: the measurement behind CI's drift tolerance.

A float32 Whisper encoder gives embeddings that differ by about 1e-6 (relative)
from one CPU instruction set to another (oneDNN picks other kernels, which sum
in another order). This script takes the cached features of the current
`dvc repro` (arch and split from params.yaml), multiplies every value by
(1 + eps * N(0, 1)) with `--repeats` seeds per eps, trains the arch's recipe
on each copy exactly as `stages/train.py` does (same seed), and prints how far
accuracy and macro F1 land from the unperturbed training. eps = 0 must give
back the pipeline's own metrics (reports/metrics.json): that is checked.

    python benchmarks/feature_perturbation.py [--eps 1e-6 1e-5] [--repeats 4] [--out reports/benchmarks/feature_perturbation.json]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from ser.evaluation import describe_machine
from ser.features import load_feature_cache
from ser.io import read_json, write_json
from ser.params import load_params, selected_arch
from ser.split import folds_of
from ser.training import pick_device, score_state, train_model


def train_and_score(arch: str, arch_params: dict, features: np.ndarray, index: pd.DataFrame,
                    assignment: pd.DataFrame, params: dict, device) -> dict:
    state, card = train_model(arch, arch_params, features, index, assignment, seed=params["train"]["seed"],
                              batch_size=params["train"]["batch_size"], device=device, progress=False)
    metrics = score_state(state, card, features, index, assignment, device)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "best_epoch": card["best_epoch"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-6, 1e-5])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--out", default="reports/benchmarks/feature_perturbation.json")
    args = parser.parse_args()
    params = load_params()
    arch, arch_params = selected_arch(params)
    if params["train"]["num_threads"]:
        torch.set_num_threads(params["train"]["num_threads"])
    device = pick_device(params["train"]["device"])
    features, index, _ = load_feature_cache("data/features")
    features = np.array(features, dtype=np.float32)
    folds = folds_of(pd.read_parquet("data/split.parquet"))
    if len(folds) != 1:
        raise SystemExit("feature_perturbation: run it under a single-split protocol (random or actor_holdout)")
    assignment = next(iter(folds.values()))

    baseline = train_and_score(arch, arch_params, features, index, assignment, params, device)
    pipeline = read_json("reports/metrics.json")
    if abs(baseline["accuracy"] - pipeline["accuracy"]) > 1e-12:
        raise SystemExit(f"feature_perturbation: unperturbed training gives accuracy {baseline['accuracy']:.4f}, "
                         f"reports/metrics.json says {pipeline['accuracy']:.4f}: re-run `dvc repro` first")
    n_test = pipeline["n_test"]
    runs = []
    for eps in args.eps:
        for repeat in range(args.repeats):
            noise = np.random.default_rng(repeat).standard_normal(features.shape, dtype=np.float32)
            result = train_and_score(arch, arch_params, features * (1 + eps * noise), index, assignment,
                                     params, device)
            result.update(eps=eps, repeat=repeat,
                          accuracy_delta=result["accuracy"] - baseline["accuracy"],
                          macro_f1_delta=result["macro_f1"] - baseline["macro_f1"])
            runs.append(result)
            print(f"eps {eps:g} #{repeat}: accuracy {result['accuracy']:.4f} ({result['accuracy_delta']:+.4f}, "
                  f"{round(result['accuracy_delta'] * n_test):+d} of {n_test} clips), macro F1 "
                  f"{result['macro_f1']:.4f} ({result['macro_f1_delta']:+.4f}), best epoch {result['best_epoch']}",
                  flush=True)
    worst = max(max(abs(r["accuracy_delta"]), abs(r["macro_f1_delta"])) for r in runs)
    machine = describe_machine(device.type)
    print(f"{arch}, {params['split']['protocol']}: unperturbed accuracy {baseline['accuracy']:.4f}, macro F1 "
          f"{baseline['macro_f1']:.4f}; largest move over {len(runs)} perturbed trainings {worst:.4f} ({machine})")
    write_json(args.out, {"arch": arch, "protocol": params["split"]["protocol"], "machine": machine,
                          "n_test": n_test, "baseline": baseline, "runs": runs, "largest_move": worst})


if __name__ == "__main__":
    main()
