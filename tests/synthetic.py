"""A tiny RAVDESS-named corpus made of tones, so tests never need the real one, and a synthetic voice.

Each emotion gets its own fundamental frequency, so a model can learn it in a
few epochs; actors shift it slightly, so the clips are not all alike. Tones are
not speech to a voice activity detector; `voice` is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, lfilter

from ser.corpus import ARCHIVE_FOLDERS, make_name

EMOTION_HZ = {e: 140.0 * 2 ** ((e - 1) / 4) for e in range(1, 9)}


def tone(emotion: int, actor: int, rate: int, seconds: float, stereo: bool = False) -> np.ndarray:
    rng = np.random.default_rng([emotion, actor, rate])
    t = np.arange(int(rate * seconds)) / rate
    f0 = EMOTION_HZ[emotion] * (1 + 0.02 * (actor % 3))
    signal = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * 0.2
    signal = (signal * np.hanning(len(t)) + 0.002 * rng.standard_normal(len(t))).astype(np.float32)
    return np.stack([signal, signal * 0.8], axis=1) if stereo else signal


# Vowels' first three formants (Hz; Peterson & Barney's averages for men).
VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (660, 1720, 2410)]


def _resonance(signal: np.ndarray, hz: float, bandwidth: float, rate: int) -> np.ndarray:
    radius = np.exp(-np.pi * bandwidth / rate)
    return lfilter([1 - radius], [1, -2 * radius * np.cos(2 * np.pi * hz / rate), radius ** 2], signal)


def voice(seconds: float = 3.0, rate: int = 22050, seed: int = 0) -> np.ndarray:
    """A source-filter voice: a falling glottal pulse train with vibrato through vowel formants, four
    syllables a second, each opened by a fricative burst. Silero VAD finds speech in about 85 % of it
    (a tone: none), so speech-detection tests need no corpus."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120 * (1.2 - 0.3 * t / seconds) * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    pulses = np.diff(np.floor(np.cumsum(f0 / rate)), prepend=0.0)
    source = lfilter([1.0], [1.0, -0.95], pulses) + rng.normal(0, 0.02, n)
    hiss_b, hiss_a = butter(4, [3000, 7000], btype="band", fs=rate)
    out, syllable, burst = np.zeros(n), int(rate / 4), int(0.06 * rate)
    for k, start in enumerate(range(0, n, syllable)):
        part = source[start:start + syllable]
        vowel = sum(gain * _resonance(part, hz, bandwidth, rate)
                    for hz, bandwidth, gain in zip(VOWELS[k % len(VOWELS)], (60, 90, 120), (1.0, 0.7, 0.4)))
        vowel *= np.sin(np.pi * np.arange(len(vowel)) / len(vowel)) ** 0.7
        if len(vowel) > burst:
            hiss = lfilter(hiss_b, hiss_a, rng.normal(0, 1, burst)) * np.hanning(burst)
            vowel[:burst] += 0.3 * hiss * np.abs(vowel).max() / (np.abs(hiss).max() + 1e-9)
        out[start:start + len(vowel)] = vowel
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


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


# A second corpus for cross-corpus tests, named another way: its label is the folder's name.
FOLDER_CORPUS_EMOTIONS = {"angry": 5, "happy": 3, "neutral": 1, "sad": 4, "bored": 2}  # folder -> tone of


def make_folder_corpus(root: str | Path, per_label: int = 3, rate: int = 16000, seconds: float = 0.8) -> list[Path]:
    """`<root>/<label>/take_<i>.wav` tones (of the RAVDESS emotion code above, another speaker's shift),
    with a SHA256SUMS listing as a published corpus has."""
    import hashlib

    root = Path(root)
    written = []
    for label, emotion in FOLDER_CORPUS_EMOTIONS.items():
        for take in range(per_label):
            path = root / label / f"take_{take}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(emotion, 25 + take, rate, seconds), rate)
            written.append(path)
    (root / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  "
                                             f"{p.relative_to(root).as_posix()}\n" for p in written))
    return written
