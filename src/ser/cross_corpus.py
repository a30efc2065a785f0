"""Another corpus's scores against RAVDESS's classes: the pieces of cross-corpus testing.

A corpus is described by params alone (`corpora` in params.yaml; its label and speaker rules and its class
map are read by ser.corpora). `score_corpus` runs a trained model directory on such a corpus through
`ser predict`'s Predictor (the model's own feature recipe, windows and run ensemble). Its features are
standardized either with the training clips' statistics, as `ser predict` does, or with the corpus's own,
fitted on every audio file of the folder whatever its label: unsupervised adaptation, no target label is
used (for a model trained within groups, ser.adaptation's shrunk statistics, then its own `after` step).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from .corpora import BadCorpusSpec, audio_files, labelled_corpus, verify_checksums
from .corpus import EMOTIONS
from .features.base import map_recipe
from .predict import Predictor, read_recording, recipe_window_features

# EmoBox's cross-corpus benchmark scores these four, with RAVDESS's calm folded into neutral.
FOUR_CLASSES = ("angry", "happy", "neutral", "sad")
FOLDED = {"calm": "neutral"}
OUTSIDE = "other"  # a predicted class the corpus lacks (surprised, for EmoDB)
STANDARDIZE_ON = ("corpus", "training")


def _folded(name: str) -> str:
    return FOLDED.get(name, name)


def cross_corpus_scores(probabilities: np.ndarray, emotions: list[str]) -> dict:
    """Two scores of a RAVDESS model's class probabilities ([files, len(EMOTIONS)]) on another corpus.

    shared: the classes the corpus has, calm folded into neutral; the prediction is the argmax over
    all eight, folded (a prediction outside the corpus's classes is simply wrong).
    four_class: EmoBox's score, on the files of angry/happy/neutral/sad only, argmax over those four
    probabilities with calm's added to neutral's.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    actual = [_folded(e) for e in emotions]
    shared = sorted(set(actual), key=EMOTIONS.index)
    predicted = [_folded(EMOTIONS[i]) for i in probabilities.argmax(1)]
    shared_index = {name: i for i, name in enumerate(shared)}
    outside = len(shared)  # a predicted class the corpus lacks: its own column, never right
    shared_scores = _scores([shared_index[a] for a in actual],
                            [shared_index.get(p, outside) for p in predicted], shared)

    four = [i for i, a in enumerate(actual) if a in FOUR_CLASSES]
    merged = probabilities.copy()
    merged[:, EMOTIONS.index("neutral")] += merged[:, EMOTIONS.index("calm")]
    columns = [EMOTIONS.index(name) for name in FOUR_CLASSES]
    four_predicted = merged[np.ix_(four, columns)].argmax(1) if four else np.array([], dtype=int)
    four_scores = _scores([FOUR_CLASSES.index(actual[i]) for i in four], list(four_predicted), list(FOUR_CLASSES))
    return {"shared": {"classes": shared, **shared_scores}, "four_class": {"classes": list(FOUR_CLASSES), **four_scores}}


def _scores(actual: list[int], predicted: list[int], names: list[str]) -> dict:
    """Accuracy, UA (mean recall) and macro F1 over the classes present, and the confusion counts
    (rows: the actual class; a last column for predictions outside `names`)."""
    from sklearn.metrics import confusion_matrix, f1_score, recall_score

    actual, predicted = np.asarray(actual, dtype=int), np.asarray(predicted, dtype=int)
    present = sorted(set(actual.tolist()))
    if not present:
        return {"n": 0, "accuracy": None, "balanced_accuracy": None, "macro_f1": None, "recall": {}, "confusion": []}
    recall = recall_score(actual, predicted, labels=present, average=None, zero_division=0)
    return {"n": int(len(actual)),
            "accuracy": float((actual == predicted).mean()),
            "balanced_accuracy": float(recall.mean()),
            "macro_f1": float(f1_score(actual, predicted, labels=present, average="macro", zero_division=0)),
            "recall": {names[label]: float(value) for label, value in zip(present, recall)},
            "confusion": confusion_matrix(actual, predicted, labels=range(len(names) + 1))[:len(names)].tolist()}


def file_window_features(job: tuple, path: str) -> tuple[np.ndarray | None, str | None]:
    """The task ser.cluster maps over a corpus's files, here or on a worker: (the window features of the file at
    `path`, None), or (None, what is wrong with it, naming it). `job` is (feature recipe, sample rate, window)."""
    recipe, sample_rate, window = job
    try:
        return recipe_window_features(recipe, read_recording(path, sample_rate), window), None
    except Exception as error:  # decoding or features: this file's problem, named
        return None, str(error) if str(path) in str(error) else f"{path}: {type(error).__name__}: {error}"


def corpus_window_features(predictor: Predictor, paths: list[Path], skip_bad_files: bool = False,
                           desc: str = "features", workers: int = 1,
                           address: str = "") -> tuple[dict[Path, torch.Tensor], list[dict]]:
    """The model's window features of each file, and the files that could not be read ({path, error}).
    A bad file is an error naming every bad file, unless `skip_bad_files` leaves them out and lists them.

    The files are mapped as the features stage maps its clips (ser.cluster): `address` "" on this machine's
    `workers` cores, else on Dask workers, each loading the encoder once; the features are the same bits."""
    recipe = copy.copy(predictor.recipe)  # unloaded: each worker loads its own encoder
    results: list = [None] * len(paths)
    for index, result in map_recipe(file_window_features, recipe, (recipe, predictor.sample_rate, predictor.window),
                                    [str(path) for path in paths], workers=workers, address=address, desc=desc):
        results[index] = result
    features, bad = {}, []
    for path, (array, error) in zip(paths, results):
        if error is None:
            features[path] = torch.from_numpy(array).to(predictor.device)
        else:
            bad.append({"path": str(path), "error": error})
    if bad and not skip_bad_files:
        raise BadCorpusSpec(f"{len(bad)} file(s) could not be read (cross_corpus.skip_bad_files: true leaves "
                            "them out):\n" + "\n".join(entry["error"] for entry in bad))
    return features, bad


def score_corpus(predictor: Predictor, spec: dict, standardize_on: str = "corpus", skip_bad_files: bool = False,
                 name: str = "corpus", workers: int = 1, address: str = "") -> dict:
    """A model's shared-class and 4-class scores on one corpus described by `spec` (folder, label, classes),
    with each file's folded actual and predicted class (`predictions`). `workers` and `address` say where the
    features are computed (`corpus_window_features`)."""
    if standardize_on not in STANDARDIZE_ON:
        raise BadCorpusSpec(f"cross_corpus.standardize_on: {standardize_on!r}; give one of {STANDARDIZE_ON}")
    folder = Path(spec["folder"])
    corpus = labelled_corpus(folder, spec["label"], spec["classes"])
    checked = verify_checksums(folder)
    # Corpus statistics come from every file of the folder, labelled or left out: none of them uses a label.
    listed = audio_files(folder) if standardize_on == "corpus" else corpus.paths
    features, skipped = corpus_window_features(predictor, listed, skip_bad_files, desc=f"{name} features",
                                               workers=workers, address=address)
    scored = [(path, emotion) for path, emotion in zip(corpus.paths, corpus.emotions) if path in features]
    if not scored:
        raise BadCorpusSpec(f"{folder}: no labelled file could be read")
    windows = [features[path] for path, _ in scored]
    own = None
    if standardize_on == "corpus":
        own = predictor.group_standardizations(torch.cat(list(features.values())), files=len(features))
    per_window = predictor.window_probabilities(torch.cat(windows), own)
    probabilities = np.stack([part.mean(dim=0).cpu().numpy()
                              for part in torch.split(per_window, [len(w) for w in windows])])
    order = [predictor.labels.index(emotion) for emotion in EMOTIONS]  # the card's order onto the corpus module's
    probabilities = probabilities[:, order]
    emotions = [emotion for _, emotion in scored]
    scores = cross_corpus_scores(probabilities, emotions)
    shared = scores["shared"]["classes"]
    predicted = [_folded(EMOTIONS[i]) for i in probabilities.argmax(1)]
    files = [{"path": str(path), "actual": _folded(emotion), "predicted": guess if guess in shared else OUTSIDE}
             for (path, emotion), guess in zip(scored, predicted)]
    return {"files": len(scored), "left_out": corpus.left_out, "skipped": skipped, "checksums_verified": checked,
            "standardized_on": standardize_on, "runs": len(predictor.models), **scores, "predictions": files}
