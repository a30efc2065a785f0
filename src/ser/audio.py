"""Audio I/O: every clip enters the pipeline as mono float32 at one sample rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class BadAudio(ValueError):
    """An audio file that cannot be used: unreadable, truncated, empty, or with non-finite samples."""


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read any file soundfile reads, mix it down to mono and resample it to `sample_rate`."""
    try:
        samples, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise BadAudio(f"{path}: cannot be read as audio ({error})") from None
    if samples.shape[0] == 0:
        raise BadAudio(f"{path}: contains no samples")
    if not np.isfinite(samples).all():  # a float file can hold them; every later step would spread them
        raise BadAudio(f"{path}: contains NaN/Inf samples")
    mono = samples.mean(axis=1)
    if file_rate != sample_rate:
        mono = soxr.resample(mono, file_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def audio_info(path: str | Path, decode: bool = False) -> dict:
    """Duration, sample rate and channels from the header; with `decode`, every frame is decoded too,
    so that a truncated or corrupt file (whose header still promises all its frames) is named."""
    try:
        with sf.SoundFile(str(path)) as audio:
            frames, rate, channels = audio.frames, audio.samplerate, audio.channels
            decoded = sum(len(block) for block in audio.blocks(blocksize=1 << 16, dtype="float32")) if decode else frames
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        what = "cannot be read as audio" if not decode else "cannot be decoded (corrupt or truncated?)"
        raise BadAudio(f"{path}: {what} ({error})") from None
    if frames <= 0:
        raise BadAudio(f"{path}: contains no samples")
    if decoded != frames:
        raise BadAudio(f"{path}: truncated or corrupt: its header says {frames} frames, {decoded} could be decoded")
    return {"duration": frames / rate, "sample_rate": rate, "channels": channels}


def fix_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad or cut at the end to exactly `length` samples (or frames, on the last axis)."""
    if signal.shape[-1] >= length:
        return signal[..., :length]
    pad = [(0, 0)] * (signal.ndim - 1) + [(0, length - signal.shape[-1])]
    return np.pad(signal, pad)
