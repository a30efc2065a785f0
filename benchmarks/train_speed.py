"""Training throughput and peak memory of each arch on this machine's device.

    python benchmarks/train_speed.py [--arch cnn_gru_attn ...] [--clips 2048] [--epochs 2]

Each arch trains through the pipeline's own loop (`ser.training.train_model`,
with its recipe from params.yaml: batch size, loss, optimizer, validation
pass) on random features of the shape its feature recipe makes, so no corpus
or cache is needed. One warm-up epoch (kernel selection, allocator growth) is
run first and not timed. Each arch runs in a fresh process, so that its peak
memory is its own: resident set size on the CPU, and on a GPU also the most
memory PyTorch allocated there.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import dataclasses
import multiprocessing
import os
import platform
import resource
import time

import numpy as np
import pandas as pd
import torch

from ser.corpus import EMOTIONS
from ser.evaluation import describe_machine
from ser.features import make_recipe
from ser.config import load_params
from ser.runtime import pick_device
from ser.training import train_model

VALIDATION_SHARE = 0.1


def random_corpus(shape: tuple[int, ...], clips: int, seed: int = 0):
    """Random float16 features with the index and one-fold assignments that train_model reads."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((clips, *shape), dtype=np.float32).astype(np.float16)
    clip_ids = [f"clip{i:06d}" for i in range(clips)]
    index = pd.DataFrame({"clip_id": clip_ids, "copy": 0})
    validation = rng.random(clips) < VALIDATION_SHARE
    assignments = pd.DataFrame({"clip_id": clip_ids, "emotion": [EMOTIONS[i % len(EMOTIONS)] for i in range(clips)],
                                "partition": np.where(validation, "validation", "train")})
    return features, index, assignments


def measure(arch: str, clips: int, epochs: int, device_name: str) -> dict:
    params = load_params()
    arch_params = params.archs[arch]
    device = pick_device(device_name)
    recipe = make_recipe(arch_params.features, params.audio.sample_rate)
    shape = recipe.shape
    features, index, assignments = random_corpus(shape, clips)
    train_rows = int((assignments["partition"] == "train").sum())

    def run(n_epochs: int) -> float:
        timed = dataclasses.replace(arch_params, train=dataclasses.replace(
            arch_params.train, epochs=n_epochs, early_stopping_patience=None))
        started = time.perf_counter()
        train_model(arch, timed, features, index, assignments, feature_recipe=recipe.config(),
                    seed=params.train.seed, batch_size=params.train.batch_size, device=device,
                    standardize_per=recipe.standardize, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    run(1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = run(epochs)
    return {"arch": arch, "shape": list(shape), "device": describe_machine(str(device)),
            "batch_size": arch_params.train.batch_size or params.train.batch_size,
            "clips_per_second": epochs * train_rows / seconds,
            "seconds_per_epoch_per_1000_clips": seconds / epochs / train_rows * 1000,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None}


def main():
    params = load_params()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="*", default=sorted(params.archs))
    parser.add_argument("--clips", type=int, default=2048, help="random clips per epoch (90 %% train)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--device", default=params.train.device)
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'arch':<24} {'input':<14} {'batch':>5} {'clips/s':>9} {'s/epoch/1k':>10} {'peak RSS MB':>11} "
          f"{'peak GPU MB':>11}  device")
    context = multiprocessing.get_context("spawn")  # a fresh process per arch: its own peak memory
    for arch in args.arch:
        with context.Pool(1) as pool:
            try:
                row = pool.apply(measure, (arch, args.clips, args.epochs, args.device))
            except ImportError as error:  # e.g. whisper_mlp's recipe without ctranslate2
                print(f"{arch:<24} skipped: {error}")
                continue
        gpu = "-" if row["peak_cuda_mb"] is None else f"{row['peak_cuda_mb']:.0f}"
        print(f"{arch:<24} {'x'.join(map(str, row['shape'])):<14} {row['batch_size']:>5} "
              f"{row['clips_per_second']:>9.1f} {row['seconds_per_epoch_per_1000_clips']:>10.2f} "
              f"{row['peak_rss_mb']:>11.0f} {gpu:>11}  {row['device']}", flush=True)


if __name__ == "__main__":
    main()
