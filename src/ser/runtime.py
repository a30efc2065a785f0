"""Where and how a job computes: its device, its threads, its seeds."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {requested!r} but PyTorch sees no CUDA device")
    return torch.device(requested)


def set_torch_threads(cores: int) -> None:
    """PyTorch's intra-op threads from params' `cores`; 0 leaves PyTorch's own default, which the kept
    results were trained with (even an explicit set to the same count changes MKL's last bits)."""
    if cores:
        torch.set_num_threads(int(cores))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # Deterministic kernels: the same params give the same weights on the same machine.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
