"""A trained model directory on other corpora: shared-class and EmoBox 4-class scores (issue 16).

    python benchmarks/cross_corpus.py [--model models] [--corpus emodb]

Each corpus is a `cross_corpus.<name>` entry of params.yaml (folder, label rule, class map; see
src/ser/cross_corpus.py). Every file goes through `ser predict`'s own Predictor (the model's feature
recipe and its run ensemble), without the speech check, since every corpus file is speech.
`--standardize-on corpus` standardizes each feature with the corpus's own mean and std instead of
the training clips' (unsupervised adaptation: no target label is used). Writes
reports/benchmarks/cross_corpus.json.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ser.audio import load_audio
from ser.cross_corpus import cross_corpus_scores, labelled_corpus, verify_checksums
from ser.evaluation import describe_machine
from ser.io import read_json, write_json
from ser.params import load_params
from ser.predict import FAILED, Predictor, audio_files
from ser.training import fit_standardization, standardization_tensors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models")
    parser.add_argument("--corpus", nargs="+", default=None, help="default: every corpus in params")
    parser.add_argument("--standardize-on", choices=["training", "corpus"], default="training")
    parser.add_argument("--out", default="reports/benchmarks/cross_corpus.json")
    args = parser.parse_args()
    corpora = load_params()["cross_corpus"]
    predictor = Predictor(args.model, detect_speech=False)
    try:
        report = read_json(args.out)
    except FileNotFoundError:
        report = {}
    report["machine"] = describe_machine(predictor.device.type)
    for name in args.corpus or list(corpora):
        spec = corpora[name]
        checked = verify_checksums(Path(spec["folder"]))
        corpus = labelled_corpus(Path(spec["folder"]), spec["label"], spec["classes"])
        started = time.perf_counter()
        if args.standardize_on == "corpus":
            probabilities = corpus_probabilities(predictor, corpus.paths, audio_files(spec["folder"]), name)
        else:
            probabilities = training_probabilities(predictor, corpus.paths, name)
        scores = cross_corpus_scores(probabilities, corpus.emotions)
        key = f"{predictor.card['arch']} {name}" + (" standardized on the corpus" * (args.standardize_on == "corpus"))
        report[key] = {"arch": predictor.card["arch"], "corpus": name, "model": args.model,
                       "standardized_on": args.standardize_on, "runs": len(predictor.models),
                       "files": len(corpus.paths), "left_out": corpus.left_out,
                       "checksums_verified": checked,
                       "seconds_per_file": round((time.perf_counter() - started) / len(corpus.paths), 3), **scores}
        write_json(args.out, report)
        for kind in ("four_class", "shared"):
            s = scores[kind]
            print(f"{key} {kind}: accuracy {100 * s['accuracy']:.2f}, UA {100 * s['balanced_accuracy']:.2f}, "
                  f"macro F1 {100 * s['macro_f1']:.2f} ({s['n']} files)")


def training_probabilities(predictor: Predictor, paths, name: str) -> np.ndarray:
    """Each file's probabilities as `ser predict` gives them (the training clips' standardization)."""
    outcomes = [predictor.predict_file(path) for path in tqdm(paths, desc=name, unit="file")]
    failed = [outcome.error for outcome in outcomes if outcome.status == FAILED]
    if failed:
        raise SystemExit("\n".join(failed))
    return np.array([[outcome.probabilities[label] for label in predictor.labels] for outcome in outcomes])


def corpus_probabilities(predictor: Predictor, paths, folder_files, name: str) -> np.ndarray:
    """Each file of `paths` with every feature standardized over the corpus's own windows: the training
    code's statistics, fitted on every audio file of the corpus folder (`folder_files`), whatever its
    label, so no target label is used. Each file is decoded and encoded once."""
    windows = {path: predictor.window_features(load_audio(path, predictor.sample_rate))
               for path in tqdm(folder_files, desc=f"{name} features", unit="file")}
    stacked = torch.cat(list(windows.values())).cpu().numpy()
    own = fit_standardization(stacked, np.arange(len(stacked)), per=predictor.card["feature_recipe"]["standardize"])
    scored = [windows[path] for path in paths]
    per_window = predictor.window_probabilities(torch.cat(scored), standardization_tensors(own, predictor.device))
    return np.stack([part.mean(dim=0).cpu().numpy() for part in torch.split(per_window, [len(w) for w in scored])])

if __name__ == "__main__":
    main()
