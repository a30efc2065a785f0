"""MFCC frames (seed 003): `n_mfcc` coefficients x `frames`, zero-padded or cut at the end."""

from __future__ import annotations

import librosa
import numpy as np

from ..audio import fix_length
from . import register
from .base import FeatureRecipe


@register("mfcc")
class MFCC(FeatureRecipe):
    def __init__(self, sample_rate: int, n_mfcc: int = 40, frames: int = 200, n_fft: int = 2048,
                 hop_length: int = 512):
        super().__init__(sample_rate, n_mfcc=n_mfcc, frames=frames, n_fft=n_fft, hop_length=hop_length)
        self.n_mfcc, self.frames, self.n_fft, self.hop_length = n_mfcc, frames, n_fft, hop_length

    @property
    def shape(self):
        return (self.n_mfcc, self.frames)

    def extract(self, signal: np.ndarray) -> np.ndarray:
        coefficients = librosa.feature.mfcc(y=signal, sr=self.sample_rate, n_mfcc=self.n_mfcc,
                                            n_fft=self.n_fft, hop_length=self.hop_length)
        return fix_length(coefficients, self.frames).astype(self.dtype)
