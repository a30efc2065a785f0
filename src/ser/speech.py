"""Is there speech in a recording, and how much: Silero VAD, whose model ships inside the `silero-vad` package.

A recording without speech (silence, noise, music, a test tone) still gets a
confident-looking emotion from any classifier; `ser predict` asks this first
and says "no speech detected" instead.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import soxr

VAD_RATE = 16000
# Silero's own defaults, named: a frame is speech above this probability, and a stretch of speech
# shorter than this is dropped as a click or a breath.
SPEECH_THRESHOLD = 0.5
MIN_SPEECH_MS = 250


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
