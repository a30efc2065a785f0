"""A trained model directory that loads without params.yaml: weights plus everything around them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .card import ModelCard
from .io import atomic_path, write_json
from .models import build_model

WEIGHTS_FILE, CARD_FILE = "model.pt", "model.json"


def save_checkpoint(model_dir: str | Path, state_dict: dict, card: ModelCard) -> None:
    """The weights with the whole card (model.pt), and the card without its statistics (model.json) for reading."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    saved = card.to_json()
    with atomic_path(model_dir / WEIGHTS_FILE) as tmp:
        torch.save({"card": saved, "state_dict": state_dict}, tmp)
    write_json(model_dir / CARD_FILE, {k: v for k, v in saved.items() if k != "standardization"})


def run_model_dir(model_dir: str | Path, name: str) -> Path:
    """Where one run's model goes: `models/` alone, else `models/<run name>/` (see `split.run_names`)."""
    return Path(model_dir) / name if name else Path(model_dir)


def _run_numbers(path: Path) -> list[int]:
    return [int(part.split("_")[-1]) for part in path.parts]


def model_dirs(model_dir: str | Path) -> list[Path]:
    """The model directories under `model_dir`: itself, or every run's folder in repeat and fold order."""
    model_dir = Path(model_dir)
    if (model_dir / WEIGHTS_FILE).exists():
        return [model_dir]
    runs = sorted((p.parent for p in model_dir.glob(f"**/{WEIGHTS_FILE}")),
                  key=lambda p: _run_numbers(p.relative_to(model_dir)))
    if not runs:
        raise FileNotFoundError(f"{model_dir}: no trained model here (run `dvc repro` first)")
    return runs


def load_checkpoint(model_dir: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, ModelCard]:
    path = Path(model_dir) / WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained model here (run `dvc repro` first)")
    saved = torch.load(path, map_location=device, weights_only=False)
    card = ModelCard.from_json(saved["card"], source=str(path))
    return restore_model(card, saved["state_dict"], device), card


def read_card(model_dir: str | Path) -> dict:
    """A model directory's card as its model.json keeps it (all but the statistics), for reading: nothing is
    loaded or built, and a card of any version reads."""
    path = Path(model_dir) / CARD_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no model card here (run `dvc repro` first)")
    return json.loads(path.read_text())


def restore_model(card: ModelCard, state_dict: dict, device: str = "cpu") -> torch.nn.Module:
    """The trained network described by `card` (as `train_model` returns it), in eval mode on `device`."""
    model = build_model(card.arch, card.input_shape, len(card.labels), **card.model_options)
    model.load_state_dict(state_dict)
    return model.to(device).eval()
