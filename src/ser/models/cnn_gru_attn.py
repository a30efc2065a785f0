"""Seed 003: two 1-D convolutions over MFCC frames, a GRU, attention, a dense output."""

from __future__ import annotations

import torch.nn as nn

from . import Network, register
from .layers import AttentionPooling


@register("cnn_gru_attn")
class CNNGRUAttention(Network):
    def __init__(self, input_shape, n_classes: int, conv_channels=(64, 128), kernel_size: int = 5,
                 gru_hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        coefficients, _frames = input_shape
        blocks, width = [], coefficients
        for channels in conv_channels:
            blocks += [nn.Conv1d(width, channels, kernel_size, padding=kernel_size // 2),
                       nn.BatchNorm1d(channels), nn.ReLU(), nn.MaxPool1d(2), nn.Dropout(dropout)]
            width = channels
        self.conv = nn.Sequential(*blocks)
        self.gru = nn.GRU(width, gru_hidden, batch_first=True)
        self.attention = AttentionPooling(gru_hidden)
        self.output = nn.Sequential(nn.Dropout(dropout), nn.Linear(gru_hidden, n_classes))

    def forward(self, mfcc):  # (batch, coefficients, frames)
        sequence, _ = self.gru(self.conv(mfcc).transpose(1, 2))
        return self.output(self.attention(sequence))
