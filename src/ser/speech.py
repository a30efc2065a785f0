"""Is there speech in a recording, and how much: Silero VAD, whose model ships inside the `silero-vad` package.

`ser predict` runs its TorchScript model through the package; `--runtime onnx` runs the package's ONNX model
(copied into the exported folder by `ser export --onnx`) with onnxruntime, through `OnnxSpeechDetector`,
since the package itself imports PyTorch.

A recording without speech (silence, noise, music, a test tone) still gets a
confident-looking emotion from any classifier; `ser predict` asks this first
and says "no speech detected" instead.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import soxr

VAD_RATE = 16000
# Silero's own defaults, named: a frame is speech above this probability, and a stretch of speech
# shorter than this is dropped as a click or a breath.
SPEECH_THRESHOLD = 0.5
MIN_SPEECH_MS = 250
# The rest of silero_vad.get_speech_timestamps's defaults, which OnnxSpeechDetector follows as they are.
MIN_SILENCE_MS, SPEECH_PAD_MS = 100, 30
# silero_vad.onnx (opset 16, 8 and 16 kHz), the model load_silero_vad(onnx=True) reads: 512 new samples a
# step at 16 kHz, after the previous step's last 64, with a recurrent state of (2, 1, 128).
SILERO_ONNX = "silero_vad.onnx"
SILERO_CHUNK, SILERO_CONTEXT, SILERO_STATE = 512, 64, (2, 1, 128)


@lru_cache(maxsize=1)
def _silero():
    """(the VAD model, silero_vad.get_speech_timestamps)."""
    import torch

    threads = torch.get_num_threads()
    import silero_vad  # its import sets PyTorch to one thread, for the whole process

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)  # so the Whisper encoder and the MLPs keep every core
    # TorchScript, from the package's own data folder: no download
    return silero_vad.load_silero_vad(onnx=False), silero_vad.get_speech_timestamps


def speech_segments(signal: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
    """(start, end) in seconds of each stretch of speech in a mono signal."""
    import torch

    model, get_speech_timestamps = _silero()
    if sample_rate != VAD_RATE:
        signal = soxr.resample(signal, sample_rate, VAD_RATE, quality="HQ")
    stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32)), model,
                                   sampling_rate=VAD_RATE, threshold=SPEECH_THRESHOLD,
                                   min_speech_duration_ms=MIN_SPEECH_MS)
    return [(stamp["start"] / VAD_RATE, stamp["end"] / VAD_RATE) for stamp in stamps]


def speech_seconds(signal: np.ndarray, sample_rate: int) -> float:
    """How many seconds of a mono signal are speech."""
    return float(sum(end - start for start, end in speech_segments(signal, sample_rate)))


def silero_onnx_file() -> Path:
    """silero_vad.onnx in the installed silero-vad package's data folder, found without importing the package
    (its import loads PyTorch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the silero-vad package is not installed: its ONNX model ships inside it "
                                "(pip install 'ser-pipeline[train]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / SILERO_ONNX
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not in this silero-vad installation (its data folder lacks {SILERO_ONNX})")
    return path


def speech_timestamps(probabilities: list[float], samples: int, threshold: float = SPEECH_THRESHOLD,
                      min_speech_ms: int = MIN_SPEECH_MS, min_silence_ms: int = MIN_SILENCE_MS,
                      speech_pad_ms: int = SPEECH_PAD_MS) -> list[tuple[int, int]]:
    """(start, end) samples of each stretch of speech at 16 kHz from Silero's per-step probabilities:
    silero_vad.get_speech_timestamps_from_probs (silero-vad 6.2, MIT) with no maximum speech length, the
    only way ser calls it (its cutting of long speech never runs then, so it is left out here)."""
    step = SILERO_CHUNK
    min_speech = VAD_RATE * min_speech_ms / 1000
    min_silence = VAD_RATE * min_silence_ms / 1000
    pad = VAD_RATE * speech_pad_ms / 1000
    exit_threshold = max(threshold - 0.15, 0.01)  # below it, speech under way is over
    triggered, speeches, current, silence_start = False, [], {}, 0
    for i, probability in enumerate(probabilities):
        sample = step * i
        if probability >= threshold and silence_start:
            silence_start = 0
        if probability >= threshold and not triggered:
            triggered, current = True, {"start": sample}
            continue
        if probability < exit_threshold and triggered:
            silence_start = silence_start or sample
            if sample - silence_start < min_silence:
                continue
            current["end"] = silence_start
            if current["end"] - current["start"] > min_speech:
                speeches.append(current)
            triggered, current, silence_start = False, {}, 0
    if current and samples - current["start"] > min_speech:
        current["end"] = samples
        speeches.append(current)
    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - pad))
        if i != len(speeches) - 1:
            gap = speeches[i + 1]["start"] - speech["end"]
            if gap < 2 * pad:
                speech["end"] += int(gap // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - gap // 2))
            else:
                speech["end"] = int(min(samples, speech["end"] + pad))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - pad))
        else:
            speech["end"] = int(min(samples, speech["end"] + pad))
    return [(speech["start"], speech["end"]) for speech in speeches]


class OnnxSpeechDetector:
    """Silero VAD's ONNX model through onnxruntime: `speech_segments` and `speech_seconds` without PyTorch."""

    def __init__(self, model_file: str | Path, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads  # one step is 576 samples
        self.session = onnxruntime.InferenceSession(str(model_file), sess_options=options,
                                                    providers=["CPUExecutionProvider"])

    def probabilities(self, signal: np.ndarray) -> list[float]:
        """Silero's speech probability of each 512-sample step of a 16 kHz signal (the last step zero-padded)."""
        signal = np.ascontiguousarray(signal, dtype=np.float32)
        padded = np.pad(signal, (SILERO_CONTEXT, -len(signal) % SILERO_CHUNK))
        state = np.zeros(SILERO_STATE, dtype=np.float32)
        rate = np.array(VAD_RATE, dtype=np.int64)
        probabilities = []
        for start in range(0, len(padded) - SILERO_CONTEXT, SILERO_CHUNK):
            chunk = padded[start:start + SILERO_CONTEXT + SILERO_CHUNK][None]
            out, state = self.session.run(None, {"input": chunk, "state": state, "sr": rate})
            probabilities.append(float(out.reshape(-1)[0]))
        return probabilities

    def speech_segments(self, signal: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
        """(start, end) in seconds of each stretch of speech in a mono signal."""
        if sample_rate != VAD_RATE:
            signal = soxr.resample(signal, sample_rate, VAD_RATE, quality="HQ")
        stamps = speech_timestamps(self.probabilities(signal), len(signal))
        return [(start / VAD_RATE, end / VAD_RATE) for start, end in stamps]

    def speech_seconds(self, signal: np.ndarray, sample_rate: int) -> float:
        return float(sum(end - start for start, end in self.speech_segments(signal, sample_rate)))
