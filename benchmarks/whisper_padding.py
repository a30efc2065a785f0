"""Whole-clip vs 30 s-padded Whisper encoding: time per clip and accuracy.

Needs the outputs of `dvc repro` up to `split` (data/raw, data/manifest.parquet,
data/split.parquet). Both modes encode the same original clips (no augmented
copies: padding them all to 30 s would take hours on a CPU), train the
whisper_mlp recipe from params.yaml on the training clips, pick the best epoch
on the validation clips and score the test clips.

    python benchmarks/whisper_padding.py [--subset speech] [--out reports/benchmarks/whisper_padding.json]
        [--keep-padded data/benchmarks/whisper_padded_speech]

`--keep-padded DIR` keeps the padded mode's feature cache in DIR, for
`benchmarks/whisper_heads.py --features DIR` to compare it under other protocols.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ser.features import compute_feature_cache, load_feature_cache, make_recipe
from ser.io import write_json
from ser.params import load_params
from ser.split import runs_of
from ser.training import score_state, train_model


def run_mode(pad_to_30s: bool, items: pd.DataFrame, split: pd.DataFrame, params: dict,
             keep_in: str | None = None) -> dict:
    arch_params = params["archs"]["whisper_mlp"]
    recipe = make_recipe({**arch_params["features"], "pad_to_30s": pad_to_30s}, params["audio"]["sample_rate"])
    recipe.shape  # load the model before timing
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(keep_in or Path(tmp) / "cache")
        started = time.perf_counter()
        compute_feature_cache(recipe, items, cache)
        seconds = time.perf_counter() - started
        features, index, _ = load_feature_cache(cache)
        features = np.array(features)
    state, card = train_model("whisper_mlp", arch_params, features, index, split, seed=params["train"]["seed"],
                              batch_size=params["train"]["batch_size"], device=torch.device("cpu"), progress=False)
    metrics = score_state(state, card, features, index, split, "cpu")
    return {"pad_to_30s": pad_to_30s, "clips": len(items), "seconds_per_clip": round(seconds / len(items), 4),
            "accuracy": round(metrics["accuracy"], 4), "macro_f1": round(metrics["macro_f1"], 4),
            "best_epoch": card["best_epoch"], "n_test": metrics["n_test"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", choices=["all", "speech", "song"], default="all")
    parser.add_argument("--out", default="reports/benchmarks/whisper_padding.json")
    parser.add_argument("--keep-padded", default=None, metavar="DIR", help="keep the padded mode's feature cache here")
    args = parser.parse_args()
    params = load_params()
    manifest = pd.read_parquet("data/manifest.parquet")
    split = runs_of(pd.read_parquet("data/split.parquet"))[1, 1]  # the first repeat, with the pipeline's seeds
    if args.subset != "all":
        split = split[split["vocal_channel"] == args.subset]
    manifest = manifest[manifest["clip_id"].isin(split["clip_id"])]
    items = manifest.assign(copy=0, path=[str(Path("data/raw") / p) for p in manifest["path"]])
    items = items[["clip_id", "copy", "path"]].sort_values("clip_id", ignore_index=True)
    results = [run_mode(pad, items, split, params, args.keep_padded if pad else None) for pad in (False, True)]
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.processor() or 'cpu'}"
    print(f"{'mode':<14}{'s/clip':>8}{'accuracy':>10}{'macro F1':>10}   ({machine}, {len(items)} clips)")
    for r in results:
        print(f"{'30 s pad' if r['pad_to_30s'] else 'whole clip':<14}{r['seconds_per_clip']:>8.3f}"
              f"{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}")
    write_json(args.out, {"machine": machine, "subset": args.subset, "protocol": params["split"]["protocol"],
                          "model": params["archs"]["whisper_mlp"]["features"]["model"], "results": results})


if __name__ == "__main__":
    main()
