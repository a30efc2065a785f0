"""Seeded augmentation: time stretch, pitch shift and Gaussian noise, per source clip.

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

from . import usable_cores
from .audio import BadAudio, load_audio
from .cluster import map_files
from .io import atomic_path

if TYPE_CHECKING:
    from .config import Augment

INDEX_FILE = "index.parquet"


def copy_generator(seed: int, clip_id: str, copy: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(clip_id.encode()), copy])


def augment_signal(signal: np.ndarray, sample_rate: int, rng: np.random.Generator,
                   config: Augment) -> tuple[np.ndarray, dict]:
    rate = rng.uniform(*config.time_stretch)
    semitones = rng.uniform(-config.pitch_shift_semitones, config.pitch_shift_semitones)
    out = librosa.effects.time_stretch(signal, rate=rate)
    out = librosa.effects.pitch_shift(out, sr=sample_rate, n_steps=semitones)
    noise_std = config.noise_peak_fraction * float(np.max(np.abs(out), initial=0.0))
    out = out + rng.normal(0.0, noise_std, size=out.shape)
    return np.clip(out, -1.0, 1.0).astype(np.float32), {
        "stretch_rate": rate, "pitch_semitones": semitones, "noise_std": noise_std}


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
