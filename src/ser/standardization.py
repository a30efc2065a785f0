"""Feature standardization: statistics fitted on chosen rows, applied to batches as the model sees them."""

from __future__ import annotations

import numpy as np

# PyTorch is imported where a tensor is made: fit_standardization serves `ser predict --runtime onnx` too,
# in an environment without it.


def fit_standardization(features: np.ndarray, rows: np.ndarray, per: str = "channel", chunk: int = 1024) -> dict:
    """Mean and std over `rows` only (a model's training rows): per channel (axis 1 of the cache) or per element."""
    if per not in ("channel", "element"):
        raise ValueError(f"standardize per {per!r}: expected channel or element")
    total, total_sq, count = 0.0, 0.0, 0
    reduce_axes = (0,) if per == "element" else tuple(a for a in range(features.ndim) if a != 1)
    for start in range(0, len(rows), chunk):
        block = np.asarray(features[rows[start:start + chunk]], dtype=np.float64)
        total = total + block.sum(axis=reduce_axes)
        total_sq = total_sq + (block ** 2).sum(axis=reduce_axes)
        count += len(block) if per == "element" else block.size // block.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-12))
    return {"mean": mean.astype(np.float32).tolist(), "std": std.astype(np.float32).tolist()}


def standardization_tensors(standardization: dict, device) -> dict:
    """The card's mean and std (lists) as tensors, converted once rather than for every batch."""
    import torch
    return {key: torch.as_tensor(standardization[key], dtype=torch.float32, device=device) for key in ("mean", "std")}


def standardize(batch: torch.Tensor, standardization: dict) -> torch.Tensor:
    import torch
    mean = torch.as_tensor(standardization["mean"], device=batch.device)
    std = torch.as_tensor(standardization["std"], device=batch.device)
    # Per element, the statistics have one clip's shape; per channel, one value per channel (axis 1).
    shape = (1, *mean.shape) if mean.ndim == batch.ndim - 1 else (1, -1) + (1,) * (batch.ndim - 2)
    return (batch.float() - mean.view(shape)) / std.view(shape)
