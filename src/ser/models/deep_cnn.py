"""Seed 002: five blocks of two 3x3 convolutions over stacked MFCC + log-mel, global average pool, a dense head."""

from __future__ import annotations

import torch.nn as nn

from . import Network, register


def conv_block(width: int, channels: int, dropout: float) -> nn.Sequential:
    layers = []
    for inputs in (width, channels):
        layers += [nn.Conv2d(inputs, channels, kernel_size=3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2), nn.Dropout2d(dropout))


@register("deep_cnn")
class DeepCNN(Network):
    def __init__(self, input_shape, n_classes: int, conv_channels=(64, 128, 256, 512, 512),
                 dense=(256, 128), conv_dropout: float = 0.3, dense_dropout: float = 0.5):
        super().__init__()
        width, mels, frames = input_shape
        if min(mels, frames) < 2 ** len(conv_channels):
            raise ValueError(f"deep_cnn: input {tuple(input_shape)} is too small for {len(conv_channels)} "
                             f"2x2 poolings; it needs at least {2 ** len(conv_channels)} mels and frames")
        blocks = []
        for channels in conv_channels:
            blocks.append(conv_block(width, channels, conv_dropout))
            width = channels
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        head = []
        for units in dense:
            head += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(dense_dropout)]
            width = units
        self.head = nn.Sequential(*head, nn.Linear(width, n_classes))

    def forward(self, stacked):  # (batch, 2, mels, frames)
        return self.head(self.features(stacked))
