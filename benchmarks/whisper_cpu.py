"""Whisper features on the CPU, side by side on the same clips, as the features stage runs them
(one single-threaded encoder per core): ms per clip for

- CTranslate2, the last layer's mean (`whisper_embedding`), int8 and float32: the stage before
  every hidden state was kept;
- PyTorch, mean and std of every hidden state (`whisper_layers`, the default now);

and how close the PyTorch encoder's last-layer mean is to CTranslate2 float32's.

Needs `dvc repro` up to `augment` (data/raw, data/augmented). The clips are a
seeded draw from the originals and their augmented copies, as the features
stage sees them.

    python benchmarks/whisper_cpu.py [--clips 120] [--out reports/benchmarks/whisper_cpu.json]
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ser.augment import clips_and_copies
from ser.features import compute_feature_cache, load_feature_cache, make_recipe
from ser.io import write_json
from ser.config import load_params
from ser.evaluation import describe_machine


def sample_items(count: int, seed: int) -> pd.DataFrame:
    items = clips_and_copies(pd.read_parquet("data/manifest.parquet"), "data/raw", "data/augmented")
    return items.sample(min(count, len(items)), random_state=seed).sort_values(["clip_id", "copy"],
                                                                              ignore_index=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--out", default="reports/benchmarks/whisper_cpu.json")
    args = parser.parse_args()
    params = load_params()
    rate = params.audio.sample_rate
    model = params.archs["whisper_mlp"].features["model"]
    items = sample_items(args.clips, params.split.seed)
    cores = os.cpu_count() or 1
    variants = {
        "CTranslate2 int8, last layer mean": {"recipe": "whisper_embedding", "cpu_compute_type": "int8"},
        "CTranslate2 float32, last layer mean": {"recipe": "whisper_embedding", "cpu_compute_type": "float32"},
        "PyTorch float32, every layer mean+std": {"recipe": "whisper_layers"},
    }
    results, outputs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, config in variants.items():
            recipe = make_recipe({**config, "model": model}, rate)
            recipe.shape  # load the model before timing
            out = Path(tmp) / label.replace(" ", "_").replace(",", "")
            started = time.perf_counter()
            compute_feature_cache(recipe, items, out, workers=cores, progress=False)
            seconds = (time.perf_counter() - started) / len(items)
            outputs[label] = np.array(load_feature_cache(out)[0], dtype=np.float32)
            results.append({"features": label, "recipe": config["recipe"], "shape": list(recipe.shape),
                            "ms_per_clip": round(1000 * seconds, 1)})
    baseline = results[0]["ms_per_clip"]
    reference = outputs["CTranslate2 float32, last layer mean"]
    last_mean = outputs["PyTorch float32, every layer mean+std"][:, -1, 0]
    cosine = (last_mean * reference).sum(1) / (np.linalg.norm(last_mean, axis=1) * np.linalg.norm(reference, axis=1))
    for result in results:
        result["time_vs_ctranslate2_int8"] = round(result["ms_per_clip"] / baseline, 2)

    machine = describe_machine("cpu")
    print(f"{len(items)} clips and copies on {machine}; {cores} encoders of one thread each")
    print(f"{'features':<40}{'ms per clip':>12}{'vs CT2 int8':>13}")
    for r in results:
        print(f"{r['features']:<40}{r['ms_per_clip']:>12.1f}{r['time_vs_ctranslate2_int8']:>12.2f}x")
    print(f"PyTorch last-layer mean vs CTranslate2 float32: min cosine {cosine.min():.6f}")
    write_json(args.out, {"machine": machine, "clips": len(items), "model": model, "results": results,
                          "min_cosine_pytorch_last_mean_to_ctranslate2_float32": round(float(cosine.min()), 6)})


if __name__ == "__main__":
    main()
