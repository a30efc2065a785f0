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
one), or `error` (the file and what is wrong with it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .audio import BadAudio, load_audio
from .checkpoint import load_checkpoint, model_dirs
from .corpus import AUDIO_EXTENSIONS
from .features import make_recipe
from .features.base import CACHE_KEYS
from .speech import speech_seconds
from .training import pick_device, standardization_tensors, standardize

WINDOW_SECONDS = 6.0
MIN_SECONDS = 0.25
SILENCE_PEAK = 1e-4
PREDICTED, NO_SPEECH, FAILED = "predicted", "no speech detected", "error"
# Formats libsndfile reads (mp3 since libsndfile 1.1), for folder scans.
PREDICTABLE_EXTENSIONS = tuple(sorted({*AUDIO_EXTENSIONS, ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif"}))


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


class Predictor:
    def __init__(self, model_dir: str | Path = "models", device: str = "auto",
                 window_seconds: float = WINDOW_SECONDS, detect_speech: bool = True):
        self.device = pick_device(device)
        self.detect_speech = detect_speech
        loaded = [load_checkpoint(directory, device=self.device) for directory in model_dirs(model_dir)]
        self.models = [model for model, _ in loaded]
        self.cards = [card for _, card in loaded]
        self.card = self.cards[0]
        self.standardizations = [standardization_tensors(card["standardization"], self.device) for card in self.cards]
        if any(card["feature_recipe"] != self.card["feature_recipe"] or card["labels"] != self.card["labels"]
               for card in self.cards):
            raise ValueError(f"{model_dir}: its run models differ in feature recipe or labels")
        recipe = {k: v for k, v in self.card["feature_recipe"].items() if k not in CACHE_KEYS}
        self.sample_rate = self.card["feature_recipe"]["sample_rate"]
        self.recipe = make_recipe(recipe, self.sample_rate)
        self.labels = self.card["labels"]
        self.window = int(window_seconds * self.sample_rate)

    def windows(self, signal: np.ndarray) -> list[np.ndarray]:
        if len(signal) <= self.window:
            return [signal]
        starts = list(range(0, len(signal) - self.window + 1, self.window // 2))
        if starts[-1] + self.window < len(signal):  # the tail gets a window of its own
            starts.append(len(signal) - self.window)
        return [signal[s:s + self.window] for s in starts]

    def window_features(self, signal: np.ndarray) -> torch.Tensor:
        """The model's features of each window of a signal at the model's rate, [windows, *shape]."""
        return torch.from_numpy(np.stack([self.recipe.extract(p) for p in self.windows(signal)])).to(self.device)

    @torch.no_grad()
    def window_probabilities(self, features: torch.Tensor, standardization: dict | None = None) -> torch.Tensor:
        """The run models' mean class probabilities per window, [windows, classes]. Each model standardizes
        with its own training statistics, unless `standardization` (tensors) is given for all."""
        return torch.stack([torch.softmax(model(standardize(features, standardization or own)), dim=1)
                            for model, own in zip(self.models, self.standardizations)]).mean(dim=0)

    def probabilities(self, signal: np.ndarray) -> tuple[np.ndarray, int]:
        features = self.window_features(signal)
        return self.window_probabilities(features).mean(dim=0).cpu().numpy(), len(features)

    def read_signal(self, path: str | Path) -> np.ndarray:
        """The file decoded at the model's rate; BadAudio, naming it, if it cannot be read or is too short."""
        signal = load_audio(path, self.sample_rate)
        if len(signal) < MIN_SECONDS * self.sample_rate:
            raise BadAudio(f"{path}: too short ({len(signal) / self.sample_rate:.2f} s; "
                           f"at least {MIN_SECONDS} s is needed)")
        return signal

    def predict_file(self, path: str | Path) -> Prediction:
        """This file's outcome; any failure, of decoding, features or model, is this file's error only."""
        try:
            signal = self.read_signal(path)
            duration = len(signal) / self.sample_rate
            if np.max(np.abs(signal)) < SILENCE_PEAK:
                return Prediction(str(path), status=NO_SPEECH, speech_seconds=0.0, duration=round(duration, 2))
            speech = speech_seconds(signal, self.sample_rate) if self.detect_speech else None
            if speech == 0.0:
                return Prediction(str(path), status=NO_SPEECH, speech_seconds=0.0, duration=round(duration, 2))
            probabilities, windows = self.probabilities(signal)
        except BadAudio as error:
            return Prediction(str(path), status=FAILED, error=str(error))
        except Exception as error:  # features or model: reported for this file, the batch goes on
            return Prediction(str(path), status=FAILED, error=f"{path}: {type(error).__name__}: {error}")
        return Prediction(str(path), emotion=self.labels[int(probabilities.argmax())],
                          probabilities={label: float(p) for label, p in zip(self.labels, probabilities)},
                          windows=windows, speech_seconds=None if speech is None else round(speech, 2),
                          duration=round(duration, 2))


def audio_files(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in PREDICTABLE_EXTENSIONS)
