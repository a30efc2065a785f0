"""Model architectures, one file each, found by name.

Each class is built as `cls(input_shape, n_classes, **arch_params["model"])`.
"""

from __future__ import annotations

import torch.nn as nn

_ARCHS: dict[str, type[nn.Module]] = {}


def register(name: str):
    def decorator(cls):
        _ARCHS[name] = cls
        return cls
    return decorator


def arch_names() -> list[str]:
    return sorted(_ARCHS)


def build_model(arch: str, input_shape: tuple[int, ...], n_classes: int, **options) -> nn.Module:
    if arch not in _ARCHS:
        raise KeyError(f"unknown model.arch {arch!r}; known: {arch_names()}")
    return _ARCHS[arch](tuple(input_shape), n_classes, **options)


from . import (  # noqa: E402,F401  (registration)
    cnn_bilstm_attn, cnn_bilstm_attn_logmel, cnn_gru_attn, deep_cnn, whisper_mlp)
