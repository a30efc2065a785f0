"""Seed 001: an MLP over mean-pooled Whisper encoder embeddings.

The seed says "several layers with normalization, dropout and non-linear
activation, progressively reducing the embedding dimension": each hidden layer
is Linear -> LayerNorm -> GELU -> Dropout, widths from `hidden`.
"""

from __future__ import annotations

import torch.nn as nn

from . import register


@register("whisper_mlp")
class WhisperMLP(nn.Module):
    def __init__(self, input_shape, n_classes: int, hidden=(256, 128), dropout: float = 0.3):
        super().__init__()
        (width,) = input_shape
        layers = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LayerNorm(size), nn.GELU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, embeddings):  # (batch, width)
        return self.net(embeddings)
