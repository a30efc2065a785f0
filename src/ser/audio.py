"""Audio I/O: every clip enters the pipeline as mono float32 at one sample rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class BadAudio(ValueError):
    """An audio file that cannot be used: unreadable, empty, or silent."""


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read any file soundfile reads, mix it down to mono and resample it to `sample_rate`."""
    try:
        samples, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise BadAudio(f"{path}: cannot be read as audio ({error})") from None
    if samples.shape[0] == 0:
        raise BadAudio(f"{path}: contains no samples")
    mono = samples.mean(axis=1)
    if file_rate != sample_rate:
        mono = soxr.resample(mono, file_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def audio_info(path: str | Path) -> dict:
    """Duration, sample rate and channels from the header, without decoding the samples."""
    try:
        info = sf.info(str(path))
    except Exception as error:
        raise BadAudio(f"{path}: cannot be read as audio ({error})") from None
    if info.frames <= 0:
        raise BadAudio(f"{path}: contains no samples")
    return {"duration": info.frames / info.samplerate, "sample_rate": info.samplerate,
            "channels": info.channels}


def fix_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad or cut at the end to exactly `length` samples (or frames, on the last axis)."""
    if signal.shape[-1] >= length:
        return signal[..., :length]
    pad = [(0, 0)] * (signal.ndim - 1) + [(0, length - signal.shape[-1])]
    return np.pad(signal, pad)
