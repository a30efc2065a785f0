"""Prediction speed of a trained model directory: start-up time and clips per second.

    python benchmarks/predict_speed.py [--model models] [--clips 100] [--no-speech-check] [FOLDER]

FOLDER defaults to the corpus in data/raw (after `dvc repro`). Start-up is
loading the model directory and the feature extractor until the first clip
is predicted; throughput is over the next `--clips` files, one at a time, as
`ser predict` does (speech detection included, unless `--no-speech-check`).
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import time

from ser.evaluation import describe_machine
from ser.predict import Predictor, audio_files


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="data/raw")
    parser.add_argument("--model", default="models")
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--no-speech-check", action="store_true", help="as `ser predict --no-speech-check`")
    args = parser.parse_args()
    found = audio_files(args.folder)
    files = found[:: max(1, len(found) // (args.clips + 1))][: args.clips + 1]  # spread over actors

    started = time.perf_counter()
    predictor = Predictor(args.model, detect_speech=not args.no_speech_check)
    predictor.predict_file(files[0])
    startup = time.perf_counter() - started

    started = time.perf_counter()
    for path in files[1:]:
        predictor.predict_file(path)
    elapsed = time.perf_counter() - started
    clips = len(files) - 1
    print(f"arch {predictor.card.arch} on {predictor.device} ({describe_machine(predictor.device.type)}), "
          f"speech check {'off' if args.no_speech_check else 'on'}: start-up {startup:.2f} s, "
          f"{clips / elapsed:.1f} clips/s ({1000 * elapsed / clips:.0f} ms per clip) over {clips} clips")


if __name__ == "__main__":
    main()
