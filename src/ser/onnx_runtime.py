"""`ser predict --runtime onnx`: a folder written by `ser export --onnx`, run with onnxruntime, without PyTorch.

Everything around the networks (decoding, the silence and speech checks, windows, `--adapt`'s group
statistics, each file's outcome) is `ser.predict.RecordingPredictor`, shared with the PyTorch runtime; the
feature recipe's numpy front end is the recipe's own code. Nothing here imports PyTorch, CTranslate2 or
silero-vad (tests/test_onnx.py runs it with them blocked).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import usable_cores
from .card import ModelCard
from .io import sha256_file
from .predict import WINDOW_SECONDS, RecordingPredictor

SIDECAR = "ser_onnx.json"  # as ser.onnx_export writes it (that module imports PyTorch)
FORMAT = 1


def read_export(folder: str | Path) -> dict:
    """The sidecar of an exported folder, each file it lists checked against its SHA-256."""
    folder = Path(folder)
    path = folder / SIDECAR
    if not path.is_file():
        hint = " (a PyTorch model directory? export it first: ser export --onnx OUT)" if list(
            folder.glob("**/model.pt")) else ""
        raise FileNotFoundError(f"{path}: no ONNX export here{hint}")
    try:
        sidecar = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if sidecar.get("format") != FORMAT:
        raise ValueError(f"{path}: export format {sidecar.get('format')!r}; this ser reads format {FORMAT} "
                         f"(export the model again with this version)")
    for name, expected in sidecar["files"].items():
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: missing from the export ({path} lists it)")
        actual = sha256_file(folder / name)
        if actual != expected:
            raise ValueError(f"{folder / name}: SHA-256 {actual}, but {path} records {expected}: the file was "
                             f"changed after the export; export the model again")
    return sidecar


class OnnxPredictor(RecordingPredictor):
    """An exported folder's graphs as `Predictor` runs the model directory: same windows, same outcomes."""

    def __init__(self, folder: str | Path, window_seconds: float | None = None, detect_speech: bool = True,
                 threads: int | None = None):
        import onnxruntime

        from .features import make_recipe
        from .features.base import CACHE_KEYS

        self.folder = Path(folder)
        sidecar = read_export(self.folder)
        self.sidecar = sidecar
        source = str(self.folder / SIDECAR)
        self.cards = [ModelCard.from_json({**card, "standardization": standardization}, source=source)
                      for card, standardization in zip(sidecar["cards"], sidecar["standardizations"])]
        self.card = self.cards[0]
        self.labels = list(sidecar["labels"])
        self.sample_rate = int(sidecar["sample_rate"])
        seconds = sidecar.get("window_seconds", WINDOW_SECONDS) if window_seconds is None else window_seconds
        self.window = int(seconds * self.sample_rate)
        self.detect_speech = detect_speech
        options = {k: v for k, v in sidecar["feature_recipe"].items() if k not in CACHE_KEYS}
        self.recipe = make_recipe(options, self.sample_rate)  # its numpy front end; no weights are read
        self.standardizations = [self.runtime_standardization(s) for s in sidecar["standardizations"]]
        settings = onnxruntime.SessionOptions()
        settings.intra_op_num_threads = threads or usable_cores()
        settings.inter_op_num_threads = 1

        def session(name):
            return onnxruntime.InferenceSession(str(self.folder / name), sess_options=settings,
                                                providers=["CPUExecutionProvider"])

        graphs = sidecar["graphs"]
        self.features_session = session(graphs["features"]) if "features" in graphs else None
        self.ensemble_session = session(graphs["ensemble"])
        self._speech = None

    def runtime_standardization(self, standardization: dict) -> dict:
        return {key: np.asarray(standardization[key], dtype=np.float32) for key in ("mean", "std")}

    def concatenate(self, blocks: list) -> np.ndarray:
        return np.concatenate(blocks)

    def as_numpy(self, values) -> np.ndarray:
        return np.asarray(values)

    def speech_seconds(self, signal: np.ndarray) -> float:
        if self._speech is None:
            from .speech import OnnxSpeechDetector
            self._speech = OnnxSpeechDetector(self.folder / self.sidecar["speech_model"])
        return self._speech.speech_seconds(signal, self.sample_rate)

    def clip_features(self, signal: np.ndarray) -> np.ndarray:
        """One window's features, as the recipe's `extract` gives them."""
        if self.features_session is None:  # a numpy recipe: its own extract
            return np.asarray(self.recipe.extract(signal), dtype=np.float32)
        log_mel = self.recipe.encoder_input(signal)[None]
        return self.features_session.run(None, {"log_mel": log_mel})[0]

    def window_features(self, signal: np.ndarray) -> np.ndarray:
        return np.stack([self.clip_features(piece) for piece in self.windows(signal)]).astype(np.float32)

    def window_probabilities(self, features: np.ndarray, standardizations: list[dict] | None = None) -> np.ndarray:
        runs = standardizations or self.standardizations
        return self.ensemble_session.run(None, {"features": np.ascontiguousarray(features, dtype=np.float32),
                                                "mean": np.stack([run["mean"] for run in runs]),
                                                "std": np.stack([run["std"] for run in runs])})[0]
