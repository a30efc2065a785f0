"""Seed 004: two conv blocks over a log-mel image, a BiLSTM, attention, a linear output."""

from __future__ import annotations

import torch.nn as nn

from . import Network, register
from .layers import AttentionPooling, frames_as_sequence


@register("cnn_bilstm_attn_logmel")
class LogMelCNNBiLSTMAttention(Network):
    def __init__(self, input_shape, n_classes: int, conv_channels=(32, 64), lstm_hidden: int = 128,
                 dropout: float = 0.2):
        super().__init__()
        width, mels, _frames = input_shape
        blocks = []
        for channels in conv_channels:
            # The seed's order: ReLU before batch norm.
            blocks += [nn.Conv2d(width, channels, kernel_size=3, padding=1), nn.ReLU(), nn.BatchNorm2d(channels),
                       nn.Dropout2d(dropout), nn.MaxPool2d(2)]
            width, mels = channels, mels // 2
        self.conv = nn.Sequential(*blocks)
        self.lstm = nn.LSTM(width * mels, lstm_hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.attention = AttentionPooling(2 * lstm_hidden)
        self.output = nn.Linear(2 * lstm_hidden, n_classes)

    def forward(self, log_mel):  # (batch, 1, mels, frames)
        sequence, _ = self.lstm(frames_as_sequence(self.conv(log_mel)))
        return self.output(self.attention(self.dropout(sequence)))
