"""`ser predict` in PyTorch against its ONNX export in onnxruntime, on the same clips and the same threads:
ms per clip, with the speech check and without, start-up, and how far the two runtimes' outcomes differ.

    python benchmarks/onnx_speed.py [--model models] [--export DIR] [--clips 40] [--threads 2] [FOLDER]

The model directory is exported into DIR first (a temporary folder unless DIR is given; an existing
export there is reused). FOLDER (default data/raw) is searched for audio; `--clips` files are taken
spread over it, one warm-up file more. Each runtime predicts them one at a time, as `ser predict` does;
both run on `--threads` threads (PyTorch's intra-op threads, onnxruntime's intra-op threads).
Writes reports/benchmarks/onnx_speed.json.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ser import usable_cores
from ser.evaluation import cpu_model
from ser.io import write_json
from ser.onnx_export import export_onnx
from ser.onnx_runtime import SIDECAR, OnnxPredictor
from ser.predict import PREDICTED, Predictor, audio_files


def timed(predictor, files) -> tuple[list, float]:
    """Each file's outcome, and the ms per file."""
    started = time.perf_counter()
    outcomes = [predictor.predict_file(path) for path in files]
    return outcomes, 1000 * (time.perf_counter() - started) / len(files)


def folder_size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.iterdir()) / 2 ** 20, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="data/raw")
    parser.add_argument("--model", default="models")
    parser.add_argument("--export", help="the ONNX folder (default: a temporary one)")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="reports/benchmarks/onnx_speed.json")
    args = parser.parse_args()
    found = audio_files(args.folder)
    if not found:
        parser.error(f"{args.folder}: no audio files")
    files = found[:: max(1, len(found) // (args.clips + 1))][: args.clips + 1]  # spread over actors
    warm_up, files = files[0], files[1:]
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        export = Path(args.export or Path(scratch) / "onnx")
        export_seconds = None
        if not (export / SIDECAR).exists():
            started = time.perf_counter()
            export_onnx(args.model, export)
            export_seconds = round(time.perf_counter() - started, 1)

        results, outcomes = [], {}
        for runtime in ("torch", "onnx"):
            started = time.perf_counter()
            if runtime == "torch":
                predictor = Predictor(args.model, device="cpu")
            else:
                predictor = OnnxPredictor(export, threads=args.threads)
            predictor.predict_file(warm_up)
            startup = time.perf_counter() - started
            outcomes[runtime], with_check = timed(predictor, files)
            predictor.detect_speech = False
            _, without_check = timed(predictor, files)
            results.append({"runtime": runtime, "startup_s": round(startup, 2),
                            "ms_per_clip": round(with_check, 1),
                            "ms_per_clip_without_speech_check": round(without_check, 1)})
        weights = sum(p.stat().st_size for p in Path(args.model).glob("**/model.pt"))
        sizes = {"export_mb": folder_size_mb(export), "model_dir_mb": round(weights / 2 ** 20, 1)}

    torch_outcomes, onnx_outcomes = outcomes["torch"], outcomes["onnx"]
    both = [(a, b) for a, b in zip(torch_outcomes, onnx_outcomes) if a.status == b.status == PREDICTED]
    differences = [max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) for a, b in both]
    card = predictor.card
    report = {
        "machine": f"{cpu_model()}, {usable_cores()} cores",
        "threads": args.threads,
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "model": {"dir": str(args.model), "arch": card.arch, "runs": len(predictor.cards),
                  "train_clips": card.train_clips, "protocol": card.split.get("protocol")},
        "clips": {"folder": str(args.folder), "count": len(files),
                  "seconds_mean": round(float(np.mean([o.duration for o in onnx_outcomes if o.duration])), 2)},
        "export_s": export_seconds,
        **sizes,
        "results": results,
        "onnx_time_vs_torch": round(results[1]["ms_per_clip"] / results[0]["ms_per_clip"], 3),
        "onnx_time_vs_torch_without_speech_check": round(
            results[1]["ms_per_clip_without_speech_check"] / results[0]["ms_per_clip_without_speech_check"], 3),
        "agreement": {"same_status": sum(a.status == b.status for a, b in zip(torch_outcomes, onnx_outcomes)),
                      "same_emotion": sum(a.emotion == b.emotion for a, b in both), "predicted": len(both),
                      "max_abs_probability_difference": float(max(differences, default=0.0))},
    }
    write_json(args.out, report)
    for row in results:
        print(f"{row['runtime']:>5}: {row['ms_per_clip']:.0f} ms per clip "
              f"({row['ms_per_clip_without_speech_check']:.0f} without the speech check), "
              f"start-up {row['startup_s']:.1f} s")
    print(f"agreement: {report['agreement']}; wrote {args.out}")


if __name__ == "__main__":
    main()
