"""How much of a seed's number comes from choosing its epoch on its own test set.

The seed documents train on 80 % and report on the other 20 %, which is also
what they call their validation set: the best epoch (and, for
ReduceLROnPlateau, the learning-rate schedule) is chosen on the clips they
report. The pipeline instead trains on 72 %, selects on 8 % and reports on
the untouched 20 %. This script retrains the selected arch on the cached
features both ways, with the same test clips and seed:

- pipeline: train on `train`, select on `validation`, score `test` (what
  `dvc repro` reports; a check that the run is the same);
- seeds' protocol: train on `train` + `validation` (80 %, their augmented
  copies too), select on `test`; scored at the epoch chosen on `test` and at
  the last epoch.

Needs `dvc repro` (or `dvc exp run`) for the arch first: data/features/ and
data/split.parquet under the random protocol.

    python benchmarks/seed_protocol.py [--out reports/benchmarks/seed_protocol_<arch>.json]
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import time

import pandas as pd

from ser.evaluation import describe_machine
from ser.features import load_feature_cache
from ser.io import write_json
from ser.card import ModelCard
from ser.config import load_params
from ser.inference import score_state
from ser.runtime import pick_device
from ser.split import runs_of
from ser.training import train_model


class EpochRecorder:
    """Takes the per-epoch metrics that train_model logs (the DVCLive calls it makes)."""

    def __init__(self):
        self.step, self.history = 0, []

    def log_metric(self, name: str, value: float) -> None:
        if name == "validation/accuracy":
            self.history.append(value)

    def make_summary(self) -> None:
        pass


def score(state: dict, card: ModelCard, features, index, assignments, device) -> dict:
    metrics = score_state(state, card, features, index, assignments, device)
    return {key: round(metrics[key], 4) for key in ("accuracy", "macro_f1", "balanced_accuracy")}


def main():
    params = load_params()
    arch, arch_params = params.arch
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=f"reports/benchmarks/seed_protocol_{arch}.json")
    args = parser.parse_args()
    if params.split.protocol != "random":
        raise SystemExit("seed_protocol: the seeds' protocol is the random split (split.protocol: random)")
    features, index, recipe = load_feature_cache("data/features")
    if recipe["recipe"] != arch_params.features["recipe"]:
        raise SystemExit(f"seed_protocol: data/features holds {recipe['recipe']!r}, not {arch}'s recipe; "
                         f"run `dvc repro` for {arch} first")
    split = runs_of(pd.read_parquet("data/split.parquet"))[1, 1]  # the first repeat, with the pipeline's seeds
    device = pick_device(params.train.device)
    options = {"seed": params.train.seed, "batch_size": params.train.batch_size, "device": device,
               "feature_recipe": recipe, "standardize_per": recipe["standardize"], "progress": False}

    started = time.perf_counter()
    state, card = train_model(arch, arch_params, features, index, split, **options)
    pipeline = {**score(state, card, features, index, split, device),
                "train_clips": card.train_clips, "best_epoch": card.best_epoch}

    # The seeds' protocol: the validation clips train too, and the test clips are the validation set.
    seeds_split = split.assign(partition=split["partition"].map({"train": "train", "validation": "train",
                                                                  "test": "validation"}))
    recorder = EpochRecorder()
    state, card = train_model(arch, arch_params, features, index, seeds_split, logger=recorder, **options)
    chosen_on_test = {**score(state, card, features, index, split, device),
                      "train_clips": card.train_clips, "best_epoch": card.best_epoch}
    last_epoch_accuracy = round(recorder.history[-1], 4)
    seconds = time.perf_counter() - started

    print(f"{arch}, random split, {chosen_on_test['train_clips']} clips in the seeds' 80 %, "
          f"{card.validation_clips} test clips ({describe_machine(str(device))}, {seconds:.0f} s)")
    print(f"{'protocol':<50}{'accuracy':>9}{'macro F1':>9}{'epoch':>7}")
    print(f"{'pipeline: 72 % train, epoch chosen on 8 %':<50}{100 * pipeline['accuracy']:>9.2f}"
          f"{100 * pipeline['macro_f1']:>9.2f}{pipeline['best_epoch']:>7}")
    print(f"{'seeds: 80 % train, epoch chosen on the test 20 %':<50}{100 * chosen_on_test['accuracy']:>9.2f}"
          f"{100 * chosen_on_test['macro_f1']:>9.2f}{chosen_on_test['best_epoch']:>7}")
    print(f"{'seeds: 80 % train, last epoch':<50}{100 * last_epoch_accuracy:>9.2f}{'':>9}{len(recorder.history):>7}")
    write_json(args.out, {"arch": arch, "machine": describe_machine(str(device)), "seconds": round(seconds),
                          "pipeline": pipeline, "seeds_chosen_on_test": chosen_on_test,
                          "seeds_last_epoch": {"accuracy": last_epoch_accuracy, "epoch": len(recorder.history)},
                          "test_accuracy_per_epoch": [round(v, 4) for v in recorder.history]})


if __name__ == "__main__":
    main()
