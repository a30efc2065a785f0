"""Seed 000: one 3x3 convolution and a 2x2 max-pool over 5 spectral channels, a BiLSTM, attention, a linear output.

The seed names no normalization or dropout inside the network (its inputs are
standardized); `dropout` before the output is there to try, 0 by default.
"""

from __future__ import annotations

import torch.nn as nn

from . import Network, register
from .layers import AttentionPooling, frames_as_sequence


@register("cnn_bilstm_attn")
class CNNBiLSTMAttention(Network):
    def __init__(self, input_shape, n_classes: int, conv_channels: int = 32, lstm_hidden: int = 128,
                 dropout: float = 0.0):
        super().__init__()
        channels, mels, _frames = input_shape
        self.conv = nn.Sequential(nn.Conv2d(channels, conv_channels, kernel_size=3, padding=1), nn.ReLU(),
                                  nn.MaxPool2d(2))
        self.lstm = nn.LSTM(conv_channels * (mels // 2), lstm_hidden, batch_first=True, bidirectional=True)
        self.attention = AttentionPooling(2 * lstm_hidden)
        self.output = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * lstm_hidden, n_classes))

    def forward(self, spectra):  # (batch, channels, mels, frames)
        sequence, _ = self.lstm(frames_as_sequence(self.conv(spectra)))
        return self.output(self.attention(sequence))
