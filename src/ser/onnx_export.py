"""`ser export --onnx OUT`: what `ser predict` runs, as ONNX graphs that onnxruntime runs without PyTorch.

The exported folder holds:

- `features.onnx` (Whisper recipes only): the encoder and the statistics the feature recipe keeps of its
  hidden states, from the log-mel (`log_mel`, [1, n_mels, 2 x frames], any clip length up to 30 s) to one
  clip's features. The front end before it (trimming, padding, the log-mel) stays in numpy: it is the
  recipe's own code (`WhisperLayerStatistics.encoder_input`), so both runtimes share it to the bit. The
  spectrogram recipes (MFCC, log-mel) are numpy from end to end: they need no graph.
- `ensemble.onnx`: every run model of the model directory, each standardizing `features` ([windows,
  *shape]) with its own `mean` and `std` ([runs, *statistics' shape]: inputs, so that `--adapt` can give a
  group's own), its class probabilities, and their mean over the runs ([windows, classes]).
- `silero_vad.onnx`: the speech check's model, copied from the silero-vad package.
- `ser_onnx.json`: the label order, each run's standardization and card, the sample rate, the window,
  the Whisper weights' SHA-256 and each file's SHA-256 (checked when the folder is loaded).

Before anything is written, the graphs are run on a probe signal and compared with PyTorch; the largest
difference is recorded, and an export that disagrees beyond `TOLERANCE` is refused.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from . import __version__
from .checkpoint import model_dirs
from .io import sha256_file
from .onnx_runtime import FORMAT, SIDECAR
from .predict import WINDOW_SECONDS, Predictor

FEATURES_FILE, ENSEMBLE_FILE = "features.onnx", "ensemble.onnx"
OPSET = 18
TOLERANCE = 1e-4  # largest class-probability difference from PyTorch an export may show on the probe signal
FEATURE_GRAPHS = ("whisper_layers",)   # recipes whose features need a network
# Recipes computed in numpy alone: nothing to export.
NUMPY_RECIPES = ("mfcc", "logmel", "mfcc_logmel", "logmel_prosody")
# Recipes that cannot be exported, and why (the command says so rather than export something else).
NOT_EXPORTABLE = {
    "whisper_embedding": "its features come from CTranslate2's int8 encoder, which has no ONNX form; the "
                         "float32 PyTorch encoder gives other features (retrain on whisper_layers, the default)",
}


class ExportRefused(ValueError):
    """A model directory that cannot be exported as it is, and why."""


class WhisperStatisticsGraph(nn.Module):
    """Log-mel in, `whisper_layers` features out: what `WhisperLayerStatistics.extract` computes after
    `encoder_input` (ser.features.whisper's hidden_state_statistics and normalize_per_clip, in PyTorch)."""

    def __init__(self, encoder: nn.Module, normalize: str | None):
        super().__init__()
        self.encoder, self.normalize = encoder, normalize

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:  # (1, n_mels, 2 x frames) -> (states, 2, width)
        stacked = torch.cat(self.encoder(log_mel))
        std, mean = torch.std_mean(stacked, dim=1, correction=0)
        statistics = torch.stack([mean, std], dim=1)
        if self.normalize == "clip":
            spread, centre = torch.std_mean(statistics, dim=-1, keepdim=True, correction=0)
            statistics = (statistics - centre) / (spread + 1e-6)
        return statistics


class EnsembleGraph(nn.Module):
    """The run models as `Predictor.window_probabilities` runs them, each with its standardization as input."""

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        self.runs = nn.ModuleList(frozen_branches(model) for model in models)

    def forward(self, features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        probabilities = []
        for i, model in enumerate(self.runs):
            # As ser.standardization.standardize broadcasts: one clip's shape per element, else per channel.
            run_mean, run_std = mean[i], std[i]
            if run_mean.ndim != features.ndim - 1:
                shape = (1, -1) + (1,) * (features.ndim - 2)
                run_mean, run_std = run_mean.reshape(shape), run_std.reshape(shape)
            probabilities.append(torch.softmax(model((features - run_mean) / run_std), dim=1))
        return torch.stack(probabilities).mean(dim=0)


def frozen_branches(model: nn.Module) -> nn.Module:
    """A copy of `model` whose forward can be traced: whisper_mlp picks its members by a buffer's value
    (`logistic_fitted`), a branch torch.export cannot follow, so the copy holds that value as a constant."""
    model = copy.deepcopy(model).eval()
    fitted = model._buffers.pop("logistic_fitted", None) if hasattr(model, "_buffers") else None
    if fitted is not None:
        model.logistic_fitted = bool(fitted)
    return model


def _export(module: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
            dynamic_shapes: dict) -> None:
    module.eval()
    with torch.no_grad():
        program = torch.onnx.export(module, args, dynamo=True, dynamic_shapes=dynamic_shapes, opset_version=OPSET,
                                    input_names=input_names, output_names=output_names, verbose=False)
    program.save(str(path), external_data=False)  # one file: the weights stay far under protobuf's 2 GB


def probe_signal(sample_rate: int, seconds: float = 3.0) -> np.ndarray:
    """A deterministic voice-like test signal: a gliding harmonic tone, amplitude-modulated, with noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 110 + 60 * t / seconds
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return (0.2 * signal + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def check_exportable(predictor: Predictor, model_dir) -> None:
    recipe = predictor.recipe
    if recipe.name in NOT_EXPORTABLE:
        raise ExportRefused(f"{model_dir}: feature recipe {recipe.name!r} cannot be exported to ONNX: "
                            f"{NOT_EXPORTABLE[recipe.name]}")
    if recipe.name not in FEATURE_GRAPHS + NUMPY_RECIPES:
        raise ExportRefused(f"{model_dir}: feature recipe {recipe.name!r} is unknown to the ONNX export (known: "
                            f"{', '.join(FEATURE_GRAPHS + NUMPY_RECIPES)}); add it to ser.onnx_export")
    if recipe.options.get("pool_frames", "all") != "all":
        raise ExportRefused(f"{model_dir}: feature recipe {recipe.name!r} with pool_frames: "
                            f"{recipe.options['pool_frames']} cannot be exported to ONNX: the exported graph pools over "
                            f"every frame the encoder gives")
    recorded = predictor.card.feature_recipe.get("weights_sha256")
    current = recipe.provenance().get("weights_sha256")
    if recorded is not None and current != recorded:
        raise ExportRefused(
            f"{model_dir}: refusing to export: the model was trained on features of Whisper weights whose "
            f"model.bin has SHA-256 {recorded} (its card's feature_recipe.weights_sha256), but "
            f"{recipe.options.get('model')!r} now resolves to {current}; export it where it resolves to the "
            f"weights it was trained on, or retrain it")


def export_onnx(model_dir: str | Path, out: str | Path, window_seconds: float = WINDOW_SECONDS) -> dict:
    """Export the model directory `model_dir` (one run or several) into the folder `out`, written atomically;
    the sidecar it wrote."""
    from .io import atomic_path
    from .speech import SILERO_ONNX, silero_onnx_file

    model_dir, out = Path(model_dir), Path(out)
    try:
        predictor = Predictor(model_dir, device="cpu", window_seconds=window_seconds)
    except ValueError as error:  # the weights' hash, or runs that differ: Predictor names the problem
        raise ExportRefused(f"refusing to export: {error}") from None
    check_exportable(predictor, model_dir)
    recipe, cards = predictor.recipe, predictor.cards
    shape = tuple(cards[0].input_shape)
    runs = [str(directory.relative_to(model_dir)) if directory != model_dir else "."
            for directory in model_dirs(model_dir)]
    silero = silero_onnx_file()
    with atomic_path(out) as tmp:
        tmp.mkdir()
        graph_files = {}
        if recipe.name in FEATURE_GRAPHS:
            graph = WhisperStatisticsGraph(recipe.encoder, recipe.normalize)
            log_mel = torch.from_numpy(recipe.encoder_input(probe_signal(predictor.sample_rate)))[None]
            frames = torch.export.Dim("frames", min=1, max=int(recipe.encoder.positions.shape[0]))
            _export(graph, (log_mel,), tmp / FEATURES_FILE, ["log_mel"], ["features"],
                    {"log_mel": {2: 2 * frames}})
            graph_files["features"] = FEATURES_FILE
        ensemble = EnsembleGraph(predictor.models)
        statistics = [_stacked(card.standardization, key) for card in cards for key in ("mean", "std")]
        mean, std = torch.from_numpy(np.stack(statistics[0::2])), torch.from_numpy(np.stack(statistics[1::2]))
        example = torch.zeros((2, *shape), dtype=torch.float32)
        _export(ensemble, (example, mean, std), tmp / ENSEMBLE_FILE, ["features", "mean", "std"], ["probabilities"],
                {"features": {0: torch.export.Dim("windows", min=1, max=4096)}, "mean": None, "std": None})
        graph_files["ensemble"] = ENSEMBLE_FILE
        shutil.copy(silero, tmp / SILERO_ONNX)
        sidecar = {
            "format": FORMAT,
            "arch": cards[0].arch,
            "labels": list(predictor.labels),
            "sample_rate": predictor.sample_rate,
            "window_seconds": window_seconds,
            "feature_recipe": cards[0].feature_recipe,
            "weights_sha256": recipe.provenance().get("weights_sha256"),
            "weights_sha256_on_card": cards[0].feature_recipe.get("weights_sha256"),
            "graphs": graph_files,
            "speech_model": SILERO_ONNX,
            "runs": runs,
            "standardizations": [card.standardization for card in cards],
            "cards": [{k: v for k, v in card.to_json().items() if k != "standardization"} for card in cards],
            "files": {name: sha256_file(tmp / name) for name in [*graph_files.values(), SILERO_ONNX]},
            "exported_with": {"ser": __version__, "torch": torch.__version__, "opset": OPSET,
                              "silero_vad_onnx": str(silero)},
        }
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=1) + "\n")
        sidecar["check"] = _compare(predictor, tmp)
        if sidecar["check"]["max_abs_probability_difference"] > TOLERANCE:
            raise ExportRefused(f"{out}: the exported graphs disagree with PyTorch on a probe signal by "
                                f"{sidecar['check']['max_abs_probability_difference']:.2e} in a class "
                                f"probability (more than {TOLERANCE}); nothing was written")
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=1) + "\n")
    return sidecar


def _stacked(standardization: dict, key: str) -> np.ndarray:
    return np.asarray(standardization[key], dtype=np.float32)


def _compare(predictor: Predictor, folder: Path) -> dict:
    """Both runtimes on the probe signal (and on a longer one, for several windows of another length)."""
    from .onnx_runtime import OnnxPredictor

    exported = OnnxPredictor(folder, window_seconds=predictor.window / predictor.sample_rate, detect_speech=False)
    worst = 0.0
    for seconds in (3.0, 1.7 + 1.5 * predictor.window / predictor.sample_rate):
        signal = probe_signal(predictor.sample_rate, seconds)
        ours, _ = exported.probabilities(signal)
        theirs, _ = predictor.probabilities(signal)
        worst = max(worst, float(np.abs(ours - theirs).max()))
    return {"max_abs_probability_difference": worst, "probe": "ser.onnx_export.probe_signal, 3.0 s and a "
                                                               "longer one of several windows"}
