"""Running a trained model directory on new recordings.

The model directory carries its feature recipe, so features are computed
exactly as in training. Training clips are at most ~6.4 s long: a longer
recording is cut into `window` s windows overlapping by half, and the class
probabilities of the windows are averaged. A model directory of several runs
(`models/fold_<k>/` from actor_kfold, `models/repeat_<r>/` from repeats, or
both) is used as an ensemble: the runs' probabilities are averaged too (they
share one feature recipe).

Every file gets one of three outcomes, and one file's failure never costs the
others: `predicted` (an emotion, every class's probability, and how many
seconds of speech the voice activity detector found), `no speech detected`
(silence, noise, a tone: no emotion is given, since any classifier would give
one), or `error` (the file and what is wrong with it). A file that holds fewer frames than its header
promises (a WAV cut short) is still judged on what it holds, and its outcome carries a `warning` naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .adaptation import adapted_standardization
from .audio import BadAudio, load_audio, truncated
from .corpora import READABLE_EXTENSIONS, audio_files  # noqa: F401  audio_files: what a folder holds
from .standardization import fit_standardization

# PyTorch is imported by `Predictor` only: `ser predict --runtime onnx` (ser.onnx_runtime) shares the rest of
# this module in an environment without it.

WINDOW_SECONDS = 6.0
MIN_SECONDS = 0.25
SILENCE_PEAK = 1e-4
PREDICTED, NO_SPEECH, FAILED = "predicted", "no speech detected", "error"
PREDICTABLE_EXTENSIONS = READABLE_EXTENSIONS


@dataclass
class Prediction:
    path: str
    status: str = PREDICTED          # predicted | no speech detected | error
    emotion: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    windows: int = 0
    speech_seconds: float | None = None  # speech the detector found (None where it was not asked)
    duration: float | None = None
    error: str | None = None
    warning: str | None = None       # e.g. the file holds fewer frames than its header promises


def read_recording(path: str | Path, sample_rate: int) -> np.ndarray:
    """The file decoded at `sample_rate`; BadAudio, naming it, if it cannot be read or is too short."""
    signal = load_audio(path, sample_rate)
    if len(signal) < MIN_SECONDS * sample_rate:
        raise BadAudio(f"{path}: too short ({len(signal) / sample_rate:.2f} s; at least {MIN_SECONDS} s is needed)")
    return signal


def signal_windows(signal: np.ndarray, window: int) -> list[np.ndarray]:
    """A signal cut into `window`-sample windows overlapping by half (the whole signal where it is shorter)."""
    if len(signal) <= window:
        return [signal]
    starts = list(range(0, len(signal) - window + 1, window // 2))
    if starts[-1] + window < len(signal):  # the tail gets a window of its own
        starts.append(len(signal) - window)
    return [signal[s:s + window] for s in starts]


def recipe_window_features(recipe, signal: np.ndarray, window: int) -> np.ndarray:
    """A feature recipe's array of each window of a signal, [windows, *shape]."""
    return np.stack([recipe.extract(part) for part in signal_windows(signal, window)])


class RecordingPredictor:
    """What `ser predict` does around the networks, whichever runtime runs them: decoding, the silence and
    speech checks, windows, group standardization and each file's outcome. A runtime sets `cards`, `card`,
    `labels`, `sample_rate`, `window` and `detect_speech`, and gives the methods below that raise."""

    cards: list
    labels: list[str]
    sample_rate: int
    window: int
    detect_speech: bool

    def window_features(self, signal: np.ndarray):
        """The model's features of each window of a signal at the model's rate, [windows, *shape]."""
        raise NotImplementedError

    def window_probabilities(self, features, standardizations: list | None = None):
        """The run models' mean class probabilities per window, [windows, classes]. Each model standardizes
        with its own training statistics, unless `standardizations` (one per model, as
        `runtime_standardization` gives them) are given."""
        raise NotImplementedError

    def runtime_standardization(self, standardization: dict):
        """A card's mean and std (lists) as this runtime's `window_probabilities` takes them."""
        raise NotImplementedError

    def concatenate(self, blocks: list):
        """Window features of several files as one block."""
        raise NotImplementedError

    def as_numpy(self, values) -> np.ndarray:
        raise NotImplementedError

    def speech_seconds(self, signal: np.ndarray) -> float:
        """How many seconds of a signal at the model's rate are speech."""
        raise NotImplementedError

    def windows(self, signal: np.ndarray) -> list[np.ndarray]:
        return signal_windows(signal, self.window)

    def group_standardizations(self, features, files: int) -> list:
        """Each run model's standardization for a group of `files` recordings whose window features are
        `features`: the group's own statistics, labels unseen (ser.adaptation)."""
        stacked = self.as_numpy(features)
        per = self.card.feature_recipe["standardize"]
        own = fit_standardization(stacked, np.arange(len(stacked)), per=per)
        return [self.runtime_standardization(adapted_standardization(card, own, files=files))
                for card in self.cards]

    def probabilities(self, signal: np.ndarray) -> tuple[np.ndarray, int]:
        features = self.window_features(signal)
        return self.as_numpy(self.window_probabilities(features)).mean(axis=0), len(features)

    def read_signal(self, path: str | Path) -> np.ndarray:
        return read_recording(path, self.sample_rate)

    def predict_file(self, path: str | Path) -> Prediction:
        """This file's outcome; any failure, of decoding, features or model, is this file's error only."""
        return self.predict_group([path])[0]

    def _file_features(self, path: str | Path) -> tuple[Prediction, object | None]:
        """A file's window features, or its outcome without them (no speech, or its error)."""
        try:
            signal = self.read_signal(path)
            short = truncated(path)
            warning = f"{path}: truncated: {short}; judged on what it holds" if short else None
            duration = round(len(signal) / self.sample_rate, 2)
            if np.max(np.abs(signal)) < SILENCE_PEAK:
                return Prediction(str(path), status=NO_SPEECH, speech_seconds=0.0, duration=duration,
                                  warning=warning), None
            speech = self.speech_seconds(signal) if self.detect_speech else None
            if speech == 0.0:
                return Prediction(str(path), status=NO_SPEECH, speech_seconds=0.0, duration=duration,
                                  warning=warning), None
            features = self.window_features(signal)
        except BadAudio as error:
            return Prediction(str(path), status=FAILED, error=str(error)), None
        except Exception as error:  # features or model: reported for this file, the batch goes on
            return Prediction(str(path), status=FAILED, error=f"{path}: {type(error).__name__}: {error}"), None
        return Prediction(str(path), windows=len(features), duration=duration, warning=warning,
                          speech_seconds=None if speech is None else round(speech, 2)), features

    def predict_group(self, paths: list[str | Path]) -> list[Prediction]:
        """Each file's outcome, in order. Where two or more files of the group have speech, the model
        standardizes them on the group's own statistics (one speaker's or one site's recordings; no label
        is read, ser.adaptation); a lone file takes the training statistics, as always."""
        outcomes = [self._file_features(path) for path in paths]
        usable = [(outcome, features) for outcome, features in outcomes if features is not None]
        group = None
        if len(usable) > 1:
            group = self.group_standardizations(self.concatenate([features for _, features in usable]),
                                                files=len(usable))
        for outcome, features in usable:
            try:
                probabilities = self.as_numpy(self.window_probabilities(features, group)).mean(axis=0)
            except Exception as error:
                outcome.status, outcome.error = FAILED, f"{outcome.path}: {type(error).__name__}: {error}"
                continue
            outcome.emotion = self.labels[int(probabilities.argmax())]
            outcome.probabilities = {label: float(p) for label, p in zip(self.labels, probabilities)}
        return [outcome for outcome, _ in outcomes]


class Predictor(RecordingPredictor):
    """The model directory's run models in PyTorch (`ser predict`, `--runtime torch`)."""

    def __init__(self, model_dir: str | Path = "models", device: str = "auto",
                 window_seconds: float = WINDOW_SECONDS, detect_speech: bool = True):
        from .checkpoint import load_checkpoint, model_dirs
        from .features import make_recipe
        from .features.base import CACHE_KEYS
        from .runtime import pick_device

        self.device = pick_device(device)
        self.detect_speech = detect_speech
        loaded = [load_checkpoint(directory, device=self.device) for directory in model_dirs(model_dir)]
        self.models = [model for model, _ in loaded]
        self.cards = [card for _, card in loaded]
        self.card = self.cards[0]
        self.standardizations = [self.runtime_standardization(card.standardization) for card in self.cards]
        if any(card.feature_recipe != self.card.feature_recipe or card.labels != self.card.labels
               for card in self.cards):
            raise ValueError(f"{model_dir}: its run models differ in feature recipe or labels")
        recipe = {k: v for k, v in self.card.feature_recipe.items() if k not in CACHE_KEYS}
        self.sample_rate = self.card.feature_recipe["sample_rate"]
        self.recipe = make_recipe(recipe, self.sample_rate)
        self._check_weights(model_dir)
        self.labels = self.card.labels
        self.window = int(window_seconds * self.sample_rate)

    def _check_weights(self, model_dir) -> None:
        """Other weights under the same model name would give other features, so other predictions, silently.
        A card written before the hash was recorded has none to check: it is served as before."""
        recorded = self.card.feature_recipe.get("weights_sha256")
        if recorded is None:
            return
        current = self.recipe.provenance().get("weights_sha256")
        if current != recorded:
            raise ValueError(
                f"{model_dir}: the model was trained on features of weights whose model.bin has SHA-256 "
                f"{recorded}, but {self.recipe.options.get('model')!r} now resolves to {current}; serve it "
                f"with the weights it was trained on, or retrain it")

    def keep_runs(self, keep) -> None:
        """Use only the run models whose positions are in `keep` (e.g. those that never trained on a corpus)."""
        keep = sorted(keep)
        if not keep:
            raise ValueError("no run model left to predict with")
        self.models, self.cards = [self.models[i] for i in keep], [self.cards[i] for i in keep]
        self.standardizations = [self.standardizations[i] for i in keep]
        self.card = self.cards[0]

    def runtime_standardization(self, standardization: dict) -> dict:
        from .standardization import standardization_tensors
        return standardization_tensors(standardization, self.device)

    def concatenate(self, blocks: list):
        import torch
        return torch.cat(blocks)

    def as_numpy(self, values) -> np.ndarray:
        return values.cpu().numpy()

    def speech_seconds(self, signal: np.ndarray) -> float:
        from .speech import speech_seconds
        return speech_seconds(signal, self.sample_rate)

    def window_features(self, signal: np.ndarray):
        """The model's features of each window of a signal at the model's rate, [windows, *shape]."""
        import torch
        return torch.from_numpy(recipe_window_features(self.recipe, signal, self.window)).to(self.device)

    def window_probabilities(self, features, standardizations: list[dict] | None = None):
        """The run models' mean class probabilities per window, [windows, classes]. Each model standardizes
        with its own training statistics, unless `standardizations` (tensors, one per model) are given."""
        import torch
        from .standardization import standardize

        with torch.no_grad():
            return torch.stack([torch.softmax(model(standardize(features, own)), dim=1)
                                for model, own in zip(self.models, standardizations or self.standardizations)]
                               ).mean(dim=0)


def adaptation_groups(paths: list[Path], rule: str | None) -> list[list[int]]:
    """The positions of `paths` in each group that `ser predict --adapt` standardizes together: `all` (one
    group), `folder` (a group per folder), a regular expression whose first group, read from the file's
    name, names the group (a speaker or site), or None (every file alone)."""
    if rule in (None, "none"):
        return [[i] for i in range(len(paths))]
    if rule == "all":
        return [list(range(len(paths)))] if paths else []
    keys = []
    if rule == "folder":
        keys = [str(Path(path).parent) for path in paths]
    else:
        try:
            pattern = re.compile(rule)
        except re.error as error:
            raise ValueError(f"--adapt {rule!r}: give all, folder, none or a regular expression ({error})") from None
        if pattern.groups < 1:
            raise ValueError(f"--adapt {rule!r}: the expression needs a group, e.g. '^(\\d+)_' for a speaker prefix")
        for path in paths:
            match = pattern.search(Path(path).name)
            keys.append(match.group(1) if match else f"unmatched:{path}")  # a file the rule does not name: alone
    groups: dict[str, list[int]] = {}
    for position, key in enumerate(keys):
        groups.setdefault(key, []).append(position)
    return list(groups.values())
