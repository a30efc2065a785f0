"""YIN or pYIN for cnn_bilstm_attn's per-frame pitch channel: time per clip, and how far apart they are.

Both trackers run with the recipe's settings from params.yaml
(archs.cnn_bilstm_attn.features: fmin, fmax, frame length, hop) on corpus
clips spread over actors, in one process as each feature worker is, after one
untimed warm-up call of each.
Agreement is measured on the frames both call voiced (pYIN's voicing
decision; YIN's frames under the recipe's energy floor are unvoiced), in cents.

    python benchmarks/pitch_tracker.py [--clips 20] [FOLDER]
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import os
import platform
import time

import librosa
import numpy as np

from ser.audio import fix_length, load_audio
from ser.features.spectral import samples_for
from ser.config import load_params
from ser.predict import audio_files


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="data/raw")
    parser.add_argument("--clips", type=int, default=20)
    args = parser.parse_args()
    params = load_params()
    options = params.archs["cnn_bilstm_attn"].features
    rate = params.audio.sample_rate
    found = audio_files(args.folder)
    files = found[:: max(1, len(found) // args.clips)][: args.clips]
    track = {"sr": rate, "fmin": options["pitch_fmin"], "fmax": options["pitch_fmax"],
             "frame_length": options["pitch_frame_length"], "hop_length": options["hop_length"]}
    signals = [fix_length(load_audio(path, rate), samples_for(options["frames"], options["hop_length"]))
               for path in files]
    librosa.yin(signals[0], **track), librosa.pyin(signals[0], **track)  # warm-up: caches, numba compilation
    seconds = {"yin": 0.0, "pyin": 0.0}
    cents = []
    for signal in signals:
        started = time.perf_counter()
        yin = librosa.yin(signal, **track)
        seconds["yin"] += time.perf_counter() - started
        started = time.perf_counter()
        pyin, voiced, _ = librosa.pyin(signal, **track)
        seconds["pyin"] += time.perf_counter() - started
        rms = librosa.feature.rms(y=signal, frame_length=options["n_fft"], hop_length=options["hop_length"])[0]
        both = voiced & (rms[: len(voiced)] > 1e-4) & np.isfinite(pyin)
        cents.append(np.abs(1200 * np.log2(yin[both] / pyin[both])))
    cents = np.concatenate(cents)
    per_clip = {name: 1000 * total / len(files) for name, total in seconds.items()}
    print(f"{len(files)} clips of {options['frames']} frames, one process "
          f"({platform.machine()}, {os.cpu_count()} cores)")
    for name, ms in per_clip.items():
        print(f"{name:<5} {ms:8.1f} ms per clip")
    print(f"pYIN / YIN: {per_clip['pyin'] / per_clip['yin']:.0f}x the time")
    print(f"on {len(cents)} frames voiced for both: YIN within 50 cents of pYIN on {100 * np.mean(cents < 50):.1f} %, "
          f"median difference {np.median(cents):.1f} cents")


if __name__ == "__main__":
    main()
