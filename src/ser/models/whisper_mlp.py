"""Seed 001: an MLP over pooled Whisper encoder states.

The seed says "several layers with normalization, dropout and non-linear
activation, progressively reducing the embedding dimension": each hidden layer
is Linear -> LayerNorm -> GELU -> Dropout, widths from `hidden`.

Over the `whisper_layers` features ([states, 2 statistics, width] per clip)
the model first chooses what it reads:
- `layers`: `all`, `last` (the seed's choice) or a list of state numbers
  (0 = the convolutions' output, i = layer i);
- `statistics`: `[mean, std]` or `[mean]` (the seed's);
- `head`: `concat` puts the chosen states side by side before the MLP;
  `weighted_sum` mixes them with learned softmax weights first (SUPERB's
  weighted sum), so the MLP sees one state's width.
Over `whisper_embedding` features (one vector per clip) it is the seed's MLP as is.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from . import register

STATISTICS = ("mean", "std")
HEADS = ("concat", "weighted_sum")


def chosen_states(layers, n_states: int) -> list[int]:
    if layers == "all":
        return list(range(n_states))
    if layers == "last":
        return [n_states - 1]
    chosen = [int(i) for i in layers]
    if not chosen or any(not 0 <= i < n_states for i in chosen):
        raise ValueError(f"layers {layers!r}: expected all, last or state numbers in 0..{n_states - 1}")
    return chosen


@register("whisper_mlp")
class WhisperMLP(nn.Module):
    def __init__(self, input_shape, n_classes: int, hidden=(256, 128), dropout: float = 0.3,
                 layers="all", statistics=STATISTICS, head: str = "concat"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head {head!r}: expected one of {', '.join(HEADS)}")
        if not statistics or any(s not in STATISTICS for s in statistics):
            raise ValueError(f"statistics {statistics!r}: expected a list of {', '.join(STATISTICS)}")
        self.head = head
        if len(input_shape) == 1:  # one pooled vector per clip
            (width,) = input_shape
            self.states = self.statistics = None
        else:
            n_states, _, state_width = input_shape
            self.register_buffer("states", torch.tensor(chosen_states(layers, n_states)), persistent=False)
            self.register_buffer("statistics", torch.tensor([STATISTICS.index(s) for s in statistics]),
                                 persistent=False)
            per_state = len(statistics) * state_width
            if head == "weighted_sum":
                self.layer_logits = nn.Parameter(torch.zeros(len(self.states)))
                width = per_state
            else:
                width = len(self.states) * per_state
        layers_ = []
        for size in hidden:
            layers_ += [nn.Linear(width, size), nn.LayerNorm(size), nn.GELU(), nn.Dropout(dropout)]
            width = size
        self.embedding_width = width  # what embed() returns per clip, for a speaker adversary to read
        layers_.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers_)

    def layer_weights(self) -> torch.Tensor | None:
        """The weighted-sum head's softmax weight per chosen state (None for concat)."""
        return torch.softmax(self.layer_logits, 0) if self.head == "weighted_sum" and self.states is not None else None

    def embed(self, features):  # (batch, width) or (batch, states, 2, width) -> the last hidden layer's output
        if self.states is None:
            return self.net[:-1](features)
        x = features.index_select(1, self.states).index_select(2, self.statistics).flatten(2)
        if self.head == "weighted_sum":
            x = torch.einsum("bsw,s->bw", x, self.layer_weights())
        return self.net[:-1](x.flatten(1))

    def classify(self, embedding):
        return self.net[-1](embedding)

    def forward(self, features):
        return self.classify(self.embed(features))
