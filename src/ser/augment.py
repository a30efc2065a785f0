"""Seeded augmentation: time stretch, pitch shift and Gaussian noise, per source clip, and optionally the
effects of recordings made elsewhere (`augment.channel`: a room, noise at a realistic SNR, a microphone's or a
line's band, a telephone codec).

Each copy's random draws come from a generator seeded by (seed, clip id, copy
number), so a copy is bit-identical on every run whatever the worker count
or order, and adding clips never changes the copies of the others.
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
from scipy import signal as scipy_signal

from . import usable_cores
from .audio import BadAudio, load_audio
from .cluster import map_files
from .io import atomic_path

if TYPE_CHECKING:
    from .config import Augment, Channel

INDEX_FILE = "index.parquet"


def copy_generator(seed: int, clip_id: str, copy: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(clip_id.encode()), copy])


def augment_signal(signal: np.ndarray, sample_rate: int, rng: np.random.Generator,
                   config: Augment) -> tuple[np.ndarray, dict]:
    rate = rng.uniform(*config.time_stretch)
    semitones = rng.uniform(-config.pitch_shift_semitones, config.pitch_shift_semitones)
    # A range of one value ([1, 1], 0) turns an effect off: the phase vocoder is not the identity at rate 1.
    out = librosa.effects.time_stretch(signal, rate=rate) if rate != 1.0 else signal
    out = librosa.effects.pitch_shift(out, sr=sample_rate, n_steps=semitones) if semitones != 0.0 else out
    channel = {}
    if config.channel is not None:
        out, channel = channel_effects(out, sample_rate, rng, config.channel)
    noise_std = config.noise_peak_fraction * float(np.max(np.abs(out), initial=0.0))
    out = out + rng.normal(0.0, noise_std, size=out.shape)
    return np.clip(out, -1.0, 1.0).astype(np.float32), {
        "stretch_rate": rate, "pitch_semitones": semitones, "noise_std": noise_std, **channel}


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def active_power(signal: np.ndarray, frame: int) -> float:
    """Mean power of the louder half of `frame`-sample frames: speech's power, not the pauses'."""
    frames = signal[: len(signal) // frame * frame].reshape(-1, frame) if len(signal) >= frame else signal[None]
    power = np.sort((frames.astype(np.float64) ** 2).mean(1))
    return float(power[len(power) // 2:].mean())


def colored_noise(rng: np.random.Generator, length: int, exponent: float) -> np.ndarray:
    spectrum = rng.normal(size=length // 2 + 1) + 1j * rng.normal(size=length // 2 + 1)
    frequency = np.arange(length // 2 + 1, dtype=np.float64)
    frequency[0] = 1.0
    noise = np.fft.irfft(spectrum / frequency ** (exponent / 2), n=length)
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def room_impulse(rng: np.random.Generator, sample_rate: int, rt60: float, direct_to_reverberant_db: float):
    """A direct path and an exponentially decaying diffuse tail (60 dB down after `rt60` s)."""
    t = np.arange(int(rt60 * sample_rate)) / sample_rate
    tail = rng.normal(size=len(t)) * np.exp(-6.9 * t / rt60)
    tail[0] = 0.0
    tail *= np.sqrt(10 ** (-direct_to_reverberant_db / 10) / (np.sum(tail ** 2) + 1e-12))
    tail[0] = 1.0
    return tail


def band_response(rng: np.random.Generator, sample_rate: int, length: int, gain_db: float) -> np.ndarray:
    """A smooth random gain over frequency: six log-spaced bands, interpolated in log frequency."""
    centres = np.geomspace(100.0, sample_rate / 2, 6)
    gains = rng.uniform(-gain_db, gain_db, size=6)
    frequency = np.maximum(np.fft.rfftfreq(length, 1 / sample_rate), 1.0)
    return 10 ** (np.interp(np.log(frequency), np.log(centres), gains) / 20)


def channel_effects(signal: np.ndarray, sample_rate: int, rng: np.random.Generator,
                    channel: Channel) -> tuple[np.ndarray, dict]:
    """Room, noise, band and codec, in the order a recording meets them; every draw from `rng`."""
    peak = float(np.max(np.abs(signal), initial=0.0))
    out = signal.astype(np.float64)
    reverb = rng.uniform() < channel.reverb_probability
    rt60 = rng.uniform(*channel.rt60_seconds)
    drr = rng.uniform(*channel.direct_to_reverberant_db)
    if reverb:
        out = scipy_signal.fftconvolve(out, room_impulse(rng, sample_rate, rt60, drr))[: len(out)]
    snr = rng.uniform(*channel.snr_db)
    color = rng.uniform(*channel.noise_color)
    noise = colored_noise(rng, len(out), color)
    out = out + noise * np.sqrt(active_power(out, sample_rate // 20) / 10 ** (snr / 10))
    highpass = log_uniform(rng, *channel.highpass_hz)
    lowpass = log_uniform(rng, *channel.lowpass_hz)
    out = scipy_signal.sosfilt(scipy_signal.butter(4, highpass, "highpass", fs=sample_rate, output="sos"), out)
    if lowpass < 0.95 * sample_rate / 2:  # above that the band is the rate's own
        out = scipy_signal.sosfilt(scipy_signal.butter(4, lowpass, "lowpass", fs=sample_rate, output="sos"), out)
    out = np.fft.irfft(np.fft.rfft(out) * band_response(rng, sample_rate, len(out), channel.band_gain_db), n=len(out))
    out *= peak / (np.max(np.abs(out), initial=0.0) + 1e-12)  # the level the clip had: the effects change timbre
    mu_law = rng.uniform() < channel.mu_law_probability
    if mu_law:
        companded = np.sign(out) * np.log1p(255 * np.abs(out)) / np.log1p(255)
        quantized = np.round(companded * 127) / 127
        out = np.sign(quantized) * np.expm1(np.abs(quantized) * np.log1p(255)) / 255
    return out.astype(np.float32), {"reverb_rt60": rt60 if reverb else 0.0, "snr_db": snr, "noise_color": color,
                                    "highpass_hz": highpass, "lowpass_hz": lowpass, "mu_law": bool(mu_law)}


def copy_file_name(clip_id: str, copy: int) -> str:
    return f"{clip_id}_aug{copy}.flac"


def augment_clip(settings: tuple[int, Augment], item: tuple[str, str]) -> list[dict]:
    """One clip's copies, each a row of the index with its FLAC file's bytes under "flac": the task ser.cluster
    maps over the clips. The driver writes the files, so a worker only reads (and never half-writes) anything."""
    sample_rate, config = settings
    clip_id, path = item
    signal = load_audio(path, sample_rate)  # BadAudio names the file
    rows = []
    for copy in range(1, config.copies + 1):
        try:
            augmented, drawn = augment_signal(signal, sample_rate, copy_generator(config.seed, clip_id, copy), config)
        except Exception as error:  # so that a stage stopped by one file says which
            raise BadAudio(f"{path}: augmented copy {copy} failed ({type(error).__name__}: {error})") from error
        flac = io.BytesIO()  # libsndfile writes the same bytes to memory as to a file
        sf.write(flac, augmented, sample_rate, subtype="PCM_16", format="FLAC")
        rows.append({"clip_id": clip_id, "copy": copy, "file": copy_file_name(clip_id, copy), **drawn,
                     "flac": flac.getvalue()})
    return rows


def augment_corpus(manifest: pd.DataFrame, raw_dir: str | Path, out_dir: str | Path, sample_rate: int,
                   config: Augment, workers: int | None = None, progress: bool = True,
                   address: str = "") -> pd.DataFrame:
    """Write `config.copies` augmented FLAC copies of every manifest clip into `out_dir`.

    All clips are augmented, whatever the split, so switching protocol or fold
    reuses the same copies; which copies train a model is decided by the split.
    `address` is params' cluster.address (ser.cluster): "" runs on this machine's `workers` cores.
    """
    workers = workers or usable_cores()
    raw_dir = Path(os.path.abspath(raw_dir)) if address else Path(raw_dir)  # a worker's working directory is not ours
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        clips = [(row.clip_id, str(raw_dir / row.path)) for row in manifest.itertuples()]
        rows = []
        for _, clip_rows in map_files(augment_clip, (sample_rate, config), clips, workers=workers, address=address,
                                      desc="augment", unit="clip", progress=progress, batch_size=4,
                                      readable=lambda clip: clip[1]):
            for row in clip_rows:
                (tmp / row["file"]).write_bytes(row.pop("flac"))
                rows.append(row)
        index = pd.DataFrame(rows).sort_values(["clip_id", "copy"], ignore_index=True)
        index.to_parquet(tmp / INDEX_FILE, index=False)
    return index


def clips_and_copies(manifest: pd.DataFrame, raw_dir: str | Path, augmented_dir: str | Path,
                     with_copies: bool = True) -> pd.DataFrame:
    """Every original clip (copy 0) and, `with_copies`, every augmented copy, as (clip_id, copy, path)
    sorted by clip and copy."""
    parts = [manifest.assign(copy=0, path=[str(Path(raw_dir) / p) for p in manifest["path"]])]
    if with_copies:
        copies = pd.read_parquet(Path(augmented_dir) / INDEX_FILE)
        parts.append(copies.assign(path=[str(Path(augmented_dir) / f) for f in copies["file"]]))
    return pd.concat(parts)[["clip_id", "copy", "path"]].sort_values(["clip_id", "copy"], ignore_index=True)
