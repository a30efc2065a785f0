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
from ser.predict import FAILED, Predictor


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
        started, rows, failed = time.perf_counter(), [], []
        if args.standardize_on == "corpus":
            rows = corpus_standardized_probabilities(predictor, corpus.paths, name)
        for path in tqdm(corpus.paths if args.standardize_on == "training" else [], desc=name, unit="file"):
            prediction = predictor.predict_file(path)
            if prediction.status == FAILED:
                failed.append(prediction.error)
                continue
            rows.append([prediction.probabilities[label] for label in predictor.labels])
        if failed:
            raise SystemExit("\n".join(failed))
        scores = cross_corpus_scores(np.array(rows), corpus.emotions)
        key = f"{predictor.card['arch']} {name}" + (" standardized on the corpus" if args.standardize_on == "corpus" else "")
        report[key] = {"arch": predictor.card["arch"], "corpus": name, "model": args.model,
                       "standardized_on": args.standardize_on, "runs": len(predictor.models), "files": len(corpus.paths), "left_out": corpus.left_out,
                       "checksums_verified": checked,
                       "seconds_per_file": round((time.perf_counter() - started) / len(corpus.paths), 3), **scores}
        write_json(args.out, report)
        for kind in ("four_class", "shared"):
            s = scores[kind]
            print(f"{key} {kind}: accuracy {100 * s['accuracy']:.2f}, UA {100 * s['balanced_accuracy']:.2f}, "
                  f"macro F1 {100 * s['macro_f1']:.2f} ({s['n']} files)")


@torch.no_grad()
def corpus_standardized_probabilities(predictor: Predictor, paths, name: str) -> np.ndarray:
    """The run ensemble's mean probabilities with every feature standardized over the corpus itself
    (one window per file: the corpus's clips are shorter than the predictor's window)."""
    features = np.stack([predictor.recipe.extract(load_audio(path, predictor.sample_rate))
                         for path in tqdm(paths, desc=f"{name} features", unit="file")]).astype(np.float32)
    standardized = torch.from_numpy((features - features.mean(0)) / (features.std(0) + 1e-6))
    return torch.stack([torch.softmax(model(standardized.to(predictor.device)), dim=1).cpu()
                        for model in predictor.models]).mean(0).numpy()


if __name__ == "__main__":
    main()
