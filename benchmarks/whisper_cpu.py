"""Whisper features on the CPU: time per clip for each CTranslate2 compute type, run as the
features stage runs it (one encoder per core) and as one encoder on every core; whether the
two give the same bits; how far each type's embeddings are from float32's.

Needs `dvc repro` up to `augment` (data/raw, data/augmented). The clips are a
seeded draw from the originals and their augmented copies, as the features
stage sees them.

    python benchmarks/whisper_cpu.py [--clips 120] [--out reports/benchmarks/whisper_cpu.json]
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

from ser.augment import clips_and_copies
from ser.features import compute_feature_cache, load_feature_cache, make_recipe
from ser.features.whisper import CPU_COMPUTE_TYPES
from ser.io import write_json
from ser.params import load_params


def cpu_isa() -> str:
    """The vector extensions that decide CTranslate2's int8 speed."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"
    present = set(flags.split(":", 1)[1].split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return " ".join(flag for flag in wanted if flag in present) or "no AVX2"


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
    rate = params["audio"]["sample_rate"]
    features = params["archs"]["whisper_mlp"]["features"]
    items = sample_items(args.clips, params["split"]["seed"])
    cores = os.cpu_count() or 1

    results, embeddings = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in CPU_COMPUTE_TYPES:
            recipe = make_recipe({**features, "cpu_compute_type": kind}, rate)
            recipe.shape  # load the model before timing
            layouts = {}
            for workers in (1, cores):
                out = Path(tmp) / f"{kind}-{workers}"
                started = time.perf_counter()
                compute_feature_cache(recipe, items, out, workers=workers, progress=False)
                layouts[workers] = (time.perf_counter() - started) / len(items)
                embeddings[kind, workers] = np.array(load_feature_cache(out)[0])
            results.append({"compute_type": kind,
                            "ms_per_clip_one_encoder_all_cores": round(1000 * layouts[1], 1),
                            "ms_per_clip_one_encoder_per_core": round(1000 * layouts[cores], 1),
                            "same_bits_both_ways": bool(np.array_equal(embeddings[kind, 1],
                                                                       embeddings[kind, cores]))})
    reference = embeddings["float32", 1]
    for result in results:
        mine = embeddings[result["compute_type"], 1]
        cosine = (mine * reference).sum(1) / (np.linalg.norm(mine, axis=1) * np.linalg.norm(reference, axis=1))
        result["min_cosine_to_float32"] = round(float(cosine.min()), 5)

    machine = f"{platform.machine()}, {cores} CPU cores, {cpu_isa()}"
    print(f"{len(items)} clips and copies on {machine}; ms per clip")
    print(f"{'compute type':<14}{'1 encoder, ' + str(cores) + ' threads':>22}{str(cores) + ' encoders, 1 thread':>22}"
          f"{'same bits':>11}{'min cos to float32':>20}")
    for r in results:
        print(f"{r['compute_type']:<14}{r['ms_per_clip_one_encoder_all_cores']:>22.1f}"
              f"{r['ms_per_clip_one_encoder_per_core']:>22.1f}{str(r['same_bits_both_ways']):>11}"
              f"{r['min_cosine_to_float32']:>20.5f}")
    write_json(args.out, {"machine": machine, "clips": len(items), "model": features["model"], "results": results})


if __name__ == "__main__":
    main()
