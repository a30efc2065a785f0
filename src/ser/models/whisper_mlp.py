"""Seed 001: an MLP over pooled Whisper encoder states.

The seed says "several layers with normalization, dropout and non-linear
activation, progressively reducing the embedding dimension": each hidden layer
is Linear -> LayerNorm -> GELU -> Dropout, widths from `hidden`.

Over the `whisper_layers` features ([states, 2 statistics, width] per clip)
the model first chooses what it reads:
- `layers`: `all`, `last` (the seed's choice) or a list of state numbers
  (0 = the convolutions' output, i = layer i);
- `statistics`: `[mean, std]` or `[mean]` (the seed's);
and puts the chosen states side by side before the MLP. (A SUPERB-style learned
weighted sum of the states read 4.2 points lower under `random` and was removed;
docs/experiments.md, "Options removed", names the commit that has it.)
Over `whisper_embedding` features (one vector per clip) it is the seed's MLP as is.

`logistic_c` adds a second member: a multinomial logistic regression over the
same chosen inputs, L2-penalized
with scikit-learn's C, fitted once the MLP has trained, on the rows it trained
on (`fit_logistic`). The model then returns the log of the two members' mean
class probabilities. Across speakers the strongly penalized linear member
generalizes at least as well as the MLP, and the two err on other clips
(docs/experiments.md, "Whisper: every layer"). null keeps the MLP alone, as the seed has it.
`logistic_share` is the member's weight in that mean (0.5: equal). At 1 the
member alone predicts; the MLP, which would then reach no prediction, is not
trained (on corpora never heard, the member alone travels furthest:
docs/other_corpora.md, "How much of the average each member carries").
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn as nn

from . import Network, register

# Fits already made in this process, by a digest of their inputs: under actor_kfold with the refit, every
# repeat of a fold fits the same rows, and a convex fit of the same inputs is the same fit.
_LOGISTIC_FITS: dict[str, tuple[np.ndarray, np.ndarray, dict]] = {}

STATISTICS = ("mean", "std")
LOGISTIC_MAX_ITER = 1000
ABSENT_CLASS_LOGIT = 30.0


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
class WhisperMLP(Network):
    def __init__(self, input_shape, n_classes: int, hidden=(256, 128), dropout: float = 0.3,
                 layers="all", statistics=STATISTICS, logistic_c: float | None = None, logistic_share: float = 0.5):
        super().__init__()
        if logistic_c is not None and not float(logistic_c) > 0:
            raise ValueError(f"logistic_c is {logistic_c!r}: expected a positive number (scikit-learn's C) or null")
        if isinstance(logistic_share, bool) or not isinstance(logistic_share, (int, float)) or not 0 < logistic_share <= 1:
            raise ValueError(f"logistic_share is {logistic_share!r}: expected a number in (0, 1], the logistic member's "
                             f"share of the averaged probabilities")
        if not statistics or any(s not in STATISTICS for s in statistics):
            raise ValueError(f"statistics {statistics!r}: expected a list of {', '.join(STATISTICS)}")
        if len(input_shape) == 1:  # one pooled vector per clip
            (width,) = input_shape
            self.states = self.statistics = None
            chosen_width = width
        else:
            n_states, _, state_width = input_shape
            self.register_buffer("states", torch.tensor(chosen_states(layers, n_states)), persistent=False)
            self.register_buffer("statistics", torch.tensor([STATISTICS.index(s) for s in statistics]),
                                 persistent=False)
            per_state = len(statistics) * state_width
            width = chosen_width = len(self.states) * per_state
        layers_ = []
        for size in hidden:
            layers_ += [nn.Linear(width, size), nn.LayerNorm(size), nn.GELU(), nn.Dropout(dropout)]
            width = size
        layers_.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers_)
        self.logistic_c = None if logistic_c is None else float(logistic_c)
        if logistic_c is None and logistic_share == 1:
            raise ValueError("logistic_share is 1 (the logistic member alone) but logistic_c is null (no member)")
        self.logistic_share = float(logistic_share)
        if self.logistic_c is not None:
            # Buffers, not parameters: no gradient step touches them, and zeros draw nothing from the
            # seeded generator, so the MLP member trains exactly as it does alone.
            self.register_buffer("logistic_weight", torch.zeros(n_classes, chosen_width))
            self.register_buffer("logistic_bias", torch.zeros(n_classes))
            self.register_buffer("logistic_fitted", torch.tensor(False))

    def selected(self, features):
        """The chosen states' chosen statistics, (batch, states, statistics x width); a pooled vector as it is."""
        if self.states is None:
            return features
        return features.index_select(1, self.states).index_select(2, self.statistics).flatten(2)

    def forward(self, features):  # (batch, width) or (batch, states, 2, width)
        logits = self.network_logits(features)
        if self.logistic_c is None or not bool(self.logistic_fitted):
            return logits
        # Returned as log-probabilities, which any caller's softmax or argmax reads as logits.
        # (Floored, so a class both members rule out stays finite.)
        share = self.logistic_share
        return torch.log((share * self.logistic_logits(features).softmax(1) + (1 - share) * logits.softmax(1))
                         .clamp_min(1e-30))

    @property
    def trains_by_gradient(self) -> bool:
        return self.logistic_c is None or self.logistic_share < 1

    def network_logits(self, features):
        """The MLP member's logits alone."""
        return self.net(self.selected(features).flatten(1))

    def logistic_logits(self, features):
        """The logistic-regression member's logits alone."""
        return self.selected(features).flatten(1) @ self.logistic_weight.T + self.logistic_bias

    def after_training(self, inputs: torch.Tensor, labels: np.ndarray, sample_weight: np.ndarray | None = None):
        """The logistic member's fit (where `logistic_c` asks for one), on the standardized rows the MLP trained
        on (the cache's shape), their class numbers and weights; what the model card records of the fit."""
        if self.logistic_c is None:
            return None
        return self.fit_logistic(inputs, labels, sample_weight)

    def fit_logistic(self, inputs: torch.Tensor, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> dict:
        """Fit the logistic-regression member on standardized training `inputs` (the cache's shape) and their
        class numbers; what the model card records of the fit."""
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        x = self.selected(inputs.float().to(self.logistic_weight.device)).flatten(1).double().cpu().numpy()
        labels = np.asarray(labels, dtype=np.int64)
        weights = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        digest = hashlib.sha1()
        for part in (x, labels, weights, np.array([self.logistic_c])):
            digest.update(np.ascontiguousarray(part).tobytes())
        key = digest.hexdigest()
        if key not in _LOGISTIC_FITS:
            regression = LogisticRegression(C=self.logistic_c, max_iter=LOGISTIC_MAX_ITER)
            with threadpool_limits(torch.get_num_threads()):  # the cores the job was given (params' `cores`)
                regression.fit(x, labels, sample_weight=weights)
            weight = np.zeros(tuple(self.logistic_weight.shape))
            # A class absent from training gets no probability; two classes come back as one logit, the second's.
            bias = np.full(len(weight), -ABSENT_CLASS_LOGIT)
            coef, intercept = regression.coef_, regression.intercept_
            if len(regression.classes_) == 2:
                coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
            weight[regression.classes_], bias[regression.classes_] = coef, intercept
            iterations = int(np.max(regression.n_iter_))
            _LOGISTIC_FITS[key] = weight, bias, {"C": self.logistic_c, "train_rows": int(len(labels)),
                                                 "iterations": iterations,
                                                 "converged": iterations < LOGISTIC_MAX_ITER}
        weight, bias, summary = _LOGISTIC_FITS[key]
        self.logistic_weight.copy_(torch.from_numpy(weight))
        self.logistic_bias.copy_(torch.from_numpy(bias))
        self.logistic_fitted.fill_(True)
        return dict(summary)
