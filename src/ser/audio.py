"""Audio I/O: every clip enters the pipeline as mono float32 at one sample rate."""

from __future__ import annotations

import os
import struct
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


def header_frames(path: str | Path) -> tuple[int, int | None] | None:
    """(frames the header promises, whole frames the file holds), where the format states its length.

    libsndfile sizes a WAV by what the file holds, so a WAV cut short reads as a shorter, whole-looking
    one: only its `data` chunk's own size says what is missing. A FLAC's STREAMINFO states its total
    samples, but only a decoder counts what its frames hold (None). None for other formats, and where
    the header leaves the length open (a WAV written to a pipe, a FLAC's total of 0).
    """
    with open(path, "rb") as file:
        head = file.read(12)
        if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
            return _wav_frames(file, "<" if head[:4] == b"RIFF" else ">")
        if head[:4] == b"fLaC" and head[4:5] in (b"\x00", b"\x80"):  # STREAMINFO is always the first metadata block
            info = head[8:] + file.read(30)
            total = int.from_bytes(info[10:18], "big") & ((1 << 36) - 1)  # after rate (20 bits), channels, depth
            return (total, None) if len(info) == 34 and total else None
    return None


def _wav_frames(file, endian: str) -> tuple[int, int] | None:
    block_align = None
    while len(chunk := file.read(8)) == 8:
        name, size = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
        if name == b"fmt ":
            fmt = file.read(size + size % 2)  # chunks are padded to even sizes
            if len(fmt) < 16:
                return None
            tag, block_align = struct.unpack(endian + "H", fmt[:2])[0], struct.unpack(endian + "H", fmt[12:14])[0]
            if tag == 0xFFFE and len(fmt) >= 28:  # WAVE_FORMAT_EXTENSIBLE: the real tag opens its SubFormat GUID
                tag = struct.unpack(endian + "I", fmt[24:28])[0]
            if tag not in (1, 3, 6, 7):  # not PCM, float, A-law or mu-law: a block holds many frames
                return None
        elif name == b"data":
            if not block_align or size in (0, 0xFFFFFFFF):  # 0 and ~0: a streaming writer's "until the end"
                return None
            present = os.fstat(file.fileno()).st_size - file.tell()
            return size // block_align, min(size, present) // block_align
        else:
            file.seek(size + size % 2, os.SEEK_CUR)
    return None


def truncated(path: str | Path) -> str | None:
    """What a file cut short is missing, by its header ("header says N frames, the file holds M"); else None."""
    promised, held = header_frames(path) or (0, None)
    return f"header says {promised} frames, the file holds {held}" if held is not None and held < promised else None


def audio_info(path: str | Path, decode: bool = False) -> dict:
    """Duration, sample rate and channels from the header; a WAV holding fewer frames than its header
    promises is named. With `decode`, every frame is decoded too, so that a compressed file cut short
    or corrupt (libsndfile takes its length from the header) is named as well."""
    try:
        with sf.SoundFile(str(path)) as audio:
            frames, rate, channels = audio.frames, audio.samplerate, audio.channels
            decoded = sum(len(block) for block in audio.blocks(blocksize=1 << 16, dtype="float32")) if decode else frames
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        what = "cannot be read as audio" if not decode else "cannot be decoded (corrupt or truncated?)"
        raise BadAudio(f"{path}: {what} ({error})") from None
    if frames <= 0:
        raise BadAudio(f"{path}: contains no samples")
    promised, held = header_frames(path) or (frames, None)
    held = decoded if held is None else held
    if held != promised:
        raise BadAudio(f"{path}: truncated or corrupt: header says {promised} frames, the file holds {held}")
    return {"duration": frames / rate, "sample_rate": rate, "channels": channels}


def fix_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad or cut at the end to exactly `length` samples (or frames, on the last axis)."""
    if signal.shape[-1] >= length:
        return signal[..., :length]
    pad = [(0, 0)] * (signal.ndim - 1) + [(0, length - signal.shape[-1])]
    return np.pad(signal, pad)
