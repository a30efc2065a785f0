"""A trained model directory that loads without params.yaml: weights plus everything around them."""

from __future__ import annotations

from pathlib import Path

import torch

from .io import atomic_path, write_json
from .models import build_model

WEIGHTS_FILE, CARD_FILE = "model.pt", "model.json"


def save_checkpoint(model_dir: str | Path, state_dict: dict, card: dict) -> None:
    """`card` holds arch, model options, labels, feature recipe, input shape and standardization."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(model_dir / WEIGHTS_FILE) as tmp:
        torch.save({"card": card, "state_dict": state_dict}, tmp)
    write_json(model_dir / CARD_FILE, {k: v for k, v in card.items() if k != "standardization"})


def fold_model_dir(model_dir: str | Path, fold: int, folds: int) -> Path:
    """Where one fold's model goes: `models/` for a single split, `models/fold_<k>/` in k-fold."""
    return Path(model_dir) if folds == 1 else Path(model_dir) / f"fold_{fold}"


def model_dirs(model_dir: str | Path) -> list[Path]:
    """The model directories under `model_dir`: itself, or its `fold_<k>/` folders in fold order."""
    model_dir = Path(model_dir)
    if (model_dir / WEIGHTS_FILE).exists():
        return [model_dir]
    folds = sorted(model_dir.glob(f"fold_*/{WEIGHTS_FILE}"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not folds:
        raise FileNotFoundError(f"{model_dir}: no trained model here (run `dvc repro` first)")
    return [p.parent for p in folds]


def load_checkpoint(model_dir: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    path = Path(model_dir) / WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained model here (run `dvc repro` first)")
    saved = torch.load(path, map_location=device, weights_only=False)
    return restore_model(saved["card"], saved["state_dict"], device), saved["card"]


def restore_model(card: dict, state_dict: dict, device: str = "cpu") -> torch.nn.Module:
    """The trained network described by `card` (as `train_model` returns it), in eval mode on `device`."""
    model = build_model(card["arch"], card["input_shape"], len(card["labels"]), **card["model_options"])
    model.load_state_dict(state_dict)
    return model.to(device).eval()
