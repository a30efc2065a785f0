"""Pieces shared by several architectures."""

from __future__ import annotations

import torch
import torch.nn as nn


class AttentionPooling(nn.Module):
    """Softmax-weighted sum over time: one learned score per time step."""

    def __init__(self, width: int):
        super().__init__()
        self.score = nn.Linear(width, 1)

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:  # (batch, time, width)
        weights = torch.softmax(self.score(sequence), dim=1)
        return (weights * sequence).sum(dim=1)


def frames_as_sequence(maps: torch.Tensor) -> torch.Tensor:
    """(batch, channels, mels, frames) feature maps as (batch, frames, channels * mels), one step per frame."""
    batch, channels, mels, frames = maps.shape
    return maps.permute(0, 3, 1, 2).reshape(batch, frames, channels * mels)
