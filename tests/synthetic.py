"""A tiny RAVDESS-named corpus made of tones, so tests never need the real one.

Each emotion gets its own fundamental frequency, so a model can learn it in a
few epochs; actors shift it slightly, so the clips are not all alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from ser.corpus import ARCHIVE_FOLDERS, make_name

EMOTION_HZ = {e: 140.0 * 2 ** ((e - 1) / 4) for e in range(1, 9)}


def tone(emotion: int, actor: int, rate: int, seconds: float, stereo: bool = False) -> np.ndarray:
    rng = np.random.default_rng([emotion, actor, rate])
    t = np.arange(int(rate * seconds)) / rate
    f0 = EMOTION_HZ[emotion] * (1 + 0.02 * (actor % 3))
    signal = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * 0.2
    signal = (signal * np.hanning(len(t)) + 0.002 * rng.standard_normal(len(t))).astype(np.float32)
    return np.stack([signal, signal * 0.8], axis=1) if stereo else signal


def make_corpus(root: str | Path, actors=(1, 2, 3, 4), song_actors=(1, 2), statements=(1, 2),
                rate: int = 22050, seconds: float = 0.8, extension: str = ".flac") -> list[Path]:
    """Write speech for `actors` (8 emotions) and song for `song_actors` (6 emotions) under `root`."""
    root = Path(root)
    written = []
    for channel, folder, emotions, who in ((1, ARCHIVE_FOLDERS["speech"], range(1, 9), actors),
                                           (2, ARCHIVE_FOLDERS["song"], range(1, 7), song_actors)):
        for actor in who:
            for emotion in emotions:
                for statement in statements:
                    intensity = 1 if emotion == 1 else 1 + statement % 2
                    path = root / folder / f"Actor_{actor:02d}" / make_name(channel, emotion, intensity,
                                                                              statement, 1, actor, extension)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    stereo = (channel, actor, emotion, statement) == (1, actors[0], 1, 1)
                    sf.write(path, tone(emotion, actor, rate, seconds, stereo), rate)
                    written.append(path)
    return written
