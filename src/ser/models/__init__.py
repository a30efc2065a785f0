"""Model architectures, one file each, found by name.

Each class is a `Network`, built as `cls(input_shape, n_classes, **archs.<name>.model)`.
"""

from __future__ import annotations

import torch.nn as nn


class Network(nn.Module):
    """An arch: features in, one logit per class out, and an optional step of its own after training."""

    def after_training(self, inputs, labels, sample_weight) -> dict | None:
        """Called once the network has trained, with the rows it trained on (standardized as it saw them),
        their class numbers and per-row class weights (or None). An arch that fits something more (whisper_mlp's
        logistic member) does it here; what it returns goes into the model card. Most archs have nothing to fit."""
        return None

    @property
    def trains_by_gradient(self) -> bool:
        """False where nothing that gradient steps would change reaches a prediction (whisper_mlp with
        `logistic_share: 1`): training then skips the epochs and only `after_training` fits."""
        return True


_ARCHS: dict[str, type[Network]] = {}


def register(name: str):
    def decorator(cls):
        if not issubclass(cls, Network):
            raise TypeError(f"arch {name}: {cls.__name__} must subclass ser.models.Network")
        _ARCHS[name] = cls
        return cls
    return decorator


def arch_class(arch: str) -> type[Network]:
    if arch not in _ARCHS:
        raise KeyError(f"unknown model.arch {arch!r}; known: {arch_names()}")
    return _ARCHS[arch]


def arch_names() -> list[str]:
    return sorted(_ARCHS)


def build_model(arch: str, input_shape: tuple[int, ...], n_classes: int, **options) -> Network:
    return arch_class(arch)(tuple(input_shape), n_classes, **options)


from . import (  # noqa: E402,F401  (registration)
    cnn_bilstm_attn, cnn_bilstm_attn_logmel, cnn_gru_attn, deep_cnn, whisper_mlp)
