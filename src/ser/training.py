"""The training loop: one architecture on the cached features, the epoch chosen on validation clips.

Only the train stage imports this module; serving a trained model needs ser.inference alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.utils.class_weight import compute_class_weight
from tqdm import tqdm

from .card import ModelCard
from .config import Arch, TrainRecipe
from .corpus import EMOTIONS
from .inference import Batches, predict_logits
from .models import build_model
from .rows import final_model_rows, partition_rows, refit_rows, trained_on
from .runtime import seed_everything
from .standardization import fit_standardization, standardization_tensors, standardize


def class_weight_values(recipe: TrainRecipe, train_labels: np.ndarray) -> np.ndarray | None:
    """The recipe's `class_weights`, one per emotion (float32), or None for unweighted."""
    if recipe.class_weights == "balanced":
        present = np.unique(train_labels)
        values = np.ones(len(EMOTIONS), dtype=np.float32)
        values[present] = compute_class_weight("balanced", classes=present, y=train_labels)
        return values
    if isinstance(recipe.class_weights, list):
        return np.asarray(recipe.class_weights, dtype=np.float32)
    return None


def make_loss(recipe: TrainRecipe, train_labels: np.ndarray, device) -> nn.Module:
    weights = class_weight_values(recipe, train_labels)
    weights = None if weights is None else torch.as_tensor(weights, device=device)
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=recipe.label_smoothing)


def make_optimizer(recipe: TrainRecipe, parameters):
    optimizer = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[recipe.optimizer]
    return optimizer(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_scheduler(recipe: TrainRecipe, optimizer, epochs: int):
    if recipe.scheduler == "plateau":  # steps on validation accuracy
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", patience=recipe.plateau_patience, factor=recipe.plateau_factor)
    if recipe.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None


def state_copy(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@dataclass
class Fit:
    """One training from scratch: its rows' batches, their standardization, the model and its optimizer."""
    data: Batches
    standardization: dict
    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator

    def train_one_epoch(self, batch_size: int, device) -> tuple[float, float]:
        """One pass over the rows in the generator's order; (mean loss, accuracy) on those batches."""
        self.model.train()
        standardization = standardization_tensors(self.standardization, device)
        total_loss, correct, seen = 0.0, 0, 0
        for chosen in self.data.batch_rows(batch_size, self.generator):
            x = standardize(self.data.features[chosen].to(device), standardization)
            y = self.data.labels[chosen].to(device)
            self.optimizer.zero_grad(set_to_none=True)
            logits = self.model(x)
            loss = self.loss_fn(logits, y)
            loss.backward()
            self.optimizer.step()
            total_loss += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        return total_loss / seen, correct / seen

    def after_training(self, recipe: TrainRecipe) -> dict | None:
        """The arch's own fit step once its network has trained (its `after_training` hook), on the rows
        the network trained on, standardized as it saw them, with the recipe's class weights."""
        labels = self.data.labels.numpy()
        weights = class_weight_values(recipe, labels)
        return self.model.after_training(standardize(self.data.features, self.standardization), labels,
                                         None if weights is None else weights[labels])


def start_fit(arch: str, arch_params: Arch, features: np.ndarray, index: pd.DataFrame, assignments: pd.DataFrame,
              rows: np.ndarray, *, seed: int, standardize_per: str, device,
              second_view: np.ndarray | None = None) -> Fit:
    """A fresh model seeded with `seed`, to train on the cache `rows`, standardized on those rows only.
    With `second_view` (the cache seen another way, e.g. ser.adaptation.single_recording_view), the same rows
    of it train too, with the same labels, and the standardization stays that of `features`' rows."""
    seed_everything(seed)
    data = Batches.of_rows(features, index, assignments, rows)
    if second_view is not None:
        second = Batches.of_rows(second_view, index, assignments, rows)
        data = Batches(torch.cat([data.features, second.features.to(data.features.dtype)]),
                       torch.cat([data.labels, second.labels]))
    standardization = fit_standardization(features, np.sort(rows), per=standardize_per)
    model = build_model(arch, tuple(features.shape[1:]), len(EMOTIONS), **arch_params.model).to(device)
    recipe = arch_params.train
    return Fit(data, standardization, model, make_loss(recipe, data.labels.numpy(), device),
               make_optimizer(recipe, model.parameters()), torch.Generator().manual_seed(seed))


def progress_label(kind: str, arch: str, metric_prefix: str) -> str:
    return f"{kind} ({arch}{', ' + metric_prefix.strip('/') if metric_prefix else ''})"


def refit_model(arch: str, arch_params: Arch, features: np.ndarray, index: pd.DataFrame, assignments: pd.DataFrame,
                *, seed: int, batch_size: int, device, standardize_per: str, learning_rates: list[float],
                logger=None, metric_prefix: str = "", progress: bool = True,
                second_view: np.ndarray | None = None) -> tuple[dict, dict, dict, dict | None]:
    """Train afresh on the training and validation clips for len(learning_rates) epochs, epoch e at
    learning_rates[e - 1]: the selection run's schedule up to its best epoch, so nothing is chosen on
    clips the model trains on. Returns (state_dict, its standardization, the card's `refit`, the arch's
    after-training record)."""
    rows = refit_rows(index, assignments, copies=arch_params.train.augmented_copies)
    fit = start_fit(arch, arch_params, features, index, assignments, rows, seed=seed,
                    standardize_per=standardize_per, device=device, second_view=second_view)
    bar = tqdm(learning_rates, desc=progress_label("refit", arch, metric_prefix), unit="epoch",
               disable=not progress or not learning_rates)
    for epoch, lr in enumerate(bar, start=1):
        for group in fit.optimizer.param_groups:
            group["lr"] = lr
        loss, accuracy = fit.train_one_epoch(batch_size, device)
        if logger is not None:
            logger.step = epoch - 1
            logger.log_metric(metric_prefix + "refit/train/loss", loss)
            logger.log_metric(metric_prefix + "refit/train/accuracy", accuracy)
            logger.make_summary()
    extra = fit.after_training(arch_params.train)
    refit = {"epochs": len(learning_rates), "train_clips": int(index["clip_id"].iloc[rows].nunique()),
             "train_rows": int(len(rows))}
    return state_copy(fit.model), fit.standardization, refit, extra


def closed_form_selection(fit: Fit, recipe: TrainRecipe, validation: Batches, device, logger,
                          metric_prefix: str) -> dict:
    """The selection run of a model that trains by its `after_training` step alone: that step on the training
    rows, then scored on the validation clips, as an epoch is (its record as the best epoch, number 0)."""
    fit.after_training(recipe)
    logits = predict_logits(fit.model, validation, fit.standardization, device)
    accuracy = (logits.argmax(1) == validation.labels).float().mean().item()
    if logger is not None:
        logger.step = 0
        logger.log_metric(metric_prefix + "validation/loss", nn.functional.cross_entropy(logits, validation.labels).item())
        logger.log_metric(metric_prefix + "validation/accuracy", accuracy)
        logger.make_summary()
    return {"accuracy": accuracy, "epoch": 0, "state": state_copy(fit.model)}


def train_model(arch: str, arch_params: Arch, features: np.ndarray, index: pd.DataFrame,
                assignments: pd.DataFrame, *, feature_recipe: dict, seed: int, batch_size: int, device: torch.device,
                standardize_per: str = "channel", logger=None, metric_prefix: str = "",
                progress: bool = True, second_view: np.ndarray | None = None) -> tuple[dict, ModelCard]:
    """Train `arch` on one run's `assignments`; return (state_dict, card).

    `batch_size` is the pipeline's default; the arch's recipe overrides it where its seed fixes one.
    `feature_recipe` is the cache's and `standardize_per` its `standardize` (channel or element).
    The state is the best validation epoch's, or, with the recipe's `refit`, a second model trained on
    the training and validation clips together for that many epochs (`refit_model`).
    `second_view` (an array like `features`) trains beside it on the same rows (start_fit); validation
    reads `features` alone. A model that trains by its `after_training` step alone (not
    `trains_by_gradient`) runs no epoch: that step on the training rows is scored on validation, and the
    refit is the same step on the training and validation rows.

    `logger` is a DVCLive Live or None; `metric_prefix` (e.g. "fold_2/") keeps
    the curves of several runs apart in one Live, each starting at step 0.
    """
    recipe = arch_params.train
    batch_size = recipe.batch_size or batch_size
    rows = partition_rows(index, assignments, copies=recipe.augmented_copies)
    if len(rows["train"]) == 0 or len(rows["validation"]) == 0:
        raise ValueError("the split left no training or no validation clips; check split params")
    fit = start_fit(arch, arch_params, features, index, assignments, rows["train"], seed=seed,
                    standardize_per=standardize_per, device=device, second_view=second_view)
    model, optimizer = fit.model, fit.optimizer
    validation = Batches.of_rows(features, index, assignments, rows["validation"])
    epochs = recipe.epochs
    scheduler = make_scheduler(recipe, optimizer, epochs)

    best = {"accuracy": -1.0, "epoch": 0, "state": None}
    learning_rates = []  # each epoch's, for a refit
    if not model.trains_by_gradient:
        epochs = 0
        best = closed_form_selection(fit, recipe, validation, device, logger, metric_prefix)
    epoch = 0
    bar = tqdm(range(1, epochs + 1), desc=progress_label("train", arch, metric_prefix), unit="epoch",
               disable=not progress or not epochs)
    for epoch in bar:
        learning_rates.append(optimizer.param_groups[0]["lr"])
        train_loss, train_accuracy = fit.train_one_epoch(batch_size, device)
        val_logits = predict_logits(model, validation, fit.standardization, device)
        val_loss = nn.functional.cross_entropy(val_logits, validation.labels).item()
        val_accuracy = (val_logits.argmax(1) == validation.labels).float().mean().item()
        if scheduler is not None:
            scheduler.step(val_accuracy) if recipe.scheduler == "plateau" else scheduler.step()
        if val_accuracy > best["accuracy"]:
            best = {"accuracy": val_accuracy, "epoch": epoch, "state": state_copy(model)}
        if logger is not None:
            logger.step = epoch - 1
            for name, value in (("train/loss", train_loss), ("train/accuracy", train_accuracy),
                                ("validation/loss", val_loss), ("validation/accuracy", val_accuracy),
                                ("lr", optimizer.param_groups[0]["lr"])):
                logger.log_metric(metric_prefix + name, value)
            logger.make_summary()
        # Redrawn with the count at the bar's own interval (TQDM_MININTERVAL in CI), not at every epoch.
        bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_accuracy:.3f}", refresh=False)
        if recipe.early_stopping_patience and epoch - best["epoch"] >= recipe.early_stopping_patience:
            break

    card = ModelCard(
        arch=arch, model_options=dict(arch_params.model), labels=list(EMOTIONS), feature_recipe=feature_recipe,
        input_shape=list(features.shape[1:]), standardization=fit.standardization,
        train_recipe=dataclasses.asdict(recipe), seed=seed, batch_size=batch_size, device=str(device),
        epochs_run=epoch, best_epoch=best["epoch"], best_validation_accuracy=best["accuracy"],
        train_clips=int(len(set(index["clip_id"].iloc[rows["train"]]))), train_rows=int(len(rows["train"])),
        validation_clips=len(validation.labels), torch_version=torch.__version__,
        trained_on=trained_on(index, assignments, final_model_rows(index, assignments, recipe)))
    if not recipe.refit:
        model.load_state_dict(best["state"])
        card.logistic = fit.after_training(recipe)
        return state_copy(model), card  # the best epoch's weights, with whatever the arch's own step fitted
    state, card.standardization, card.refit, card.logistic = refit_model(
        arch, arch_params, features, index, assignments, seed=seed, batch_size=batch_size, device=device,
        standardize_per=standardize_per, learning_rates=learning_rates[:best["epoch"]], logger=logger,
        metric_prefix=metric_prefix, progress=progress, second_view=second_view)
    if logger is not None:  # DVCLive's step (and summary) stays the selection run's last epoch
        logger.step = max(epoch - 1, 0)
        logger.make_summary()
    return state, card
