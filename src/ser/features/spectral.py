"""Log-mel based recipes: fixed-size spectrogram stacks for the 2-D CNN archs (seeds 000, 002, 004).

Every recipe fixes the clip length on the signal, before the transform, so
that the frames after a short clip are the log-mel of silence (the floor,
top_db below the clip's peak) rather than zeros, which in dB would read as
the loudest value.
"""

from __future__ import annotations

import librosa
import numpy as np

from ..audio import fix_length
from . import register
from .base import FeatureRecipe

TOP_DB = 80.0


def samples_for(frames: int, hop_length: int) -> int:
    """Signal length that gives exactly `frames` centred STFT frames."""
    return (frames - 1) * hop_length


def log_mel(signal: np.ndarray, sample_rate: int, n_mels: int, n_fft: int, hop_length: int) -> np.ndarray:
    power = librosa.feature.melspectrogram(y=signal, sr=sample_rate, n_mels=n_mels, n_fft=n_fft,
                                           hop_length=hop_length)
    # ref=np.max as the seeds do; amin keeps an all-silent clip finite (all at the floor).
    return librosa.power_to_db(power, ref=np.max, amin=1e-10, top_db=TOP_DB)


def peak_normalize(signal: np.ndarray) -> np.ndarray:
    peak = np.max(np.abs(signal)) if signal.size else 0.0
    return signal / peak if peak > 0 else signal


@register("logmel")
class LogMel(FeatureRecipe):
    """Seed 004: 1 x n_mels x frames log-mel of the peak-normalized clip."""

    def __init__(self, sample_rate: int, n_mels: int = 128, frames: int = 300, n_fft: int = 2048,
                 hop_length: int = 512, peak_normalize: bool = True):
        super().__init__(sample_rate, n_mels=n_mels, frames=frames, n_fft=n_fft, hop_length=hop_length,
                         peak_normalize=peak_normalize)
        self.n_mels, self.frames, self.n_fft, self.hop_length = n_mels, frames, n_fft, hop_length
        self.normalize = peak_normalize

    @property
    def shape(self):
        return (1, self.n_mels, self.frames)

    def extract(self, signal: np.ndarray) -> np.ndarray:
        if self.normalize:
            signal = peak_normalize(signal)
        signal = fix_length(signal, samples_for(self.frames, self.hop_length))
        mel = log_mel(signal, self.sample_rate, self.n_mels, self.n_fft, self.hop_length)
        return mel[np.newaxis].astype(self.dtype)


@register("mfcc_logmel")
class MFCCLogMel(FeatureRecipe):
    """Seed 002: MFCC and log-mel, both n_mels high, stacked as 2 x n_mels x T over a clip cut or padded to `seconds`."""

    def __init__(self, sample_rate: int, n_mels: int = 128, seconds: float = 3.5, n_fft: int = 2048,
                 hop_length: int = 512):
        super().__init__(sample_rate, n_mels=n_mels, seconds=seconds, n_fft=n_fft, hop_length=hop_length)
        self.n_mels, self.n_fft, self.hop_length = n_mels, n_fft, hop_length
        self.samples = int(round(seconds * sample_rate))

    @property
    def shape(self):
        return (2, self.n_mels, 1 + self.samples // self.hop_length)

    def extract(self, signal: np.ndarray) -> np.ndarray:
        signal = fix_length(signal, self.samples)
        mel = log_mel(signal, self.sample_rate, self.n_mels, self.n_fft, self.hop_length)
        mfcc = librosa.feature.mfcc(S=mel, n_mfcc=self.n_mels)
        return np.stack([mfcc, mel]).astype(self.dtype)


@register("logmel_prosody")
class LogMelProsody(FeatureRecipe):
    """Seed 000: log-mel, its delta and delta-delta, per-frame pitch and per-frame RMS energy as 5 x n_mels x frames.

    Pitch and energy are one value per frame, repeated down the mel axis so
    that all five channels share one shape. Pitch is YIN's estimate (pYIN
    costs about 100x more per clip; see README), 0 where the frame is silent.
    """

    def __init__(self, sample_rate: int, n_mels: int = 64, frames: int = 200, n_fft: int = 1024,
                 hop_length: int = 320, pitch_fmin: float = 65.0, pitch_fmax: float = 1000.0,
                 pitch_frame_length: int = 2048):
        super().__init__(sample_rate, n_mels=n_mels, frames=frames, n_fft=n_fft, hop_length=hop_length,
                         pitch_fmin=pitch_fmin, pitch_fmax=pitch_fmax, pitch_frame_length=pitch_frame_length)
        self.n_mels, self.frames, self.n_fft, self.hop_length = n_mels, frames, n_fft, hop_length
        self.pitch_fmin, self.pitch_fmax, self.pitch_frame_length = pitch_fmin, pitch_fmax, pitch_frame_length

    @property
    def shape(self):
        return (5, self.n_mels, self.frames)

    def extract(self, signal: np.ndarray) -> np.ndarray:
        signal = fix_length(signal, samples_for(self.frames, self.hop_length)).astype(np.float32)
        mel = log_mel(signal, self.sample_rate, self.n_mels, self.n_fft, self.hop_length)
        rms = librosa.feature.rms(y=signal, frame_length=self.n_fft, hop_length=self.hop_length)[0]
        pitch = librosa.yin(signal, fmin=self.pitch_fmin, fmax=self.pitch_fmax, sr=self.sample_rate,
                            frame_length=self.pitch_frame_length, hop_length=self.hop_length)
        pitch = np.where(rms > 1e-4, np.nan_to_num(pitch), 0.0)
        rows = [mel, librosa.feature.delta(mel), librosa.feature.delta(mel, order=2),
                np.broadcast_to(fix_length(pitch, self.frames), mel.shape),
                np.broadcast_to(fix_length(rms, self.frames), mel.shape)]
        return np.stack(rows).astype(self.dtype)
