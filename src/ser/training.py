"""Training one architecture on the cached features, with model selection on the validation clips."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from sklearn.utils.class_weight import compute_class_weight
from tqdm import tqdm

from .checkpoint import restore_model
from .corpus import EMOTIONS
from .evaluation import classification_metrics
from .models import build_model


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but PyTorch sees no CUDA device")
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


def partition_rows(index: pd.DataFrame, assignments: pd.DataFrame, copies: bool = True) -> dict[str, np.ndarray]:
    """Feature-cache rows per partition: training takes a clip and its copies (`copies`); the others, originals only.

    A copy (copy > 0) is selected only through its source clip's partition,
    so no copy of a validation or test clip can reach training.
    """
    partition = index["clip_id"].map(assignments.set_index("clip_id")["partition"])
    original = index["copy"] == 0
    return {
        "train": np.flatnonzero((partition == "train") & (original | copies)),
        "validation": np.flatnonzero((partition == "validation") & original),
        "test": np.flatnonzero((partition == "test") & original),
    }


def clip_values(index: pd.DataFrame, rows: np.ndarray, assignments: pd.DataFrame, column: str) -> pd.Series:
    """A column of the split (emotion, actor, ...) for each of the cache `rows`, through its clip."""
    return index["clip_id"].iloc[rows].map(assignments.set_index("clip_id")[column])


def labels_for(index: pd.DataFrame, rows: np.ndarray, assignments: pd.DataFrame) -> np.ndarray:
    emotion = clip_values(index, rows, assignments, "emotion")
    return emotion.map({name: i for i, name in enumerate(EMOTIONS)}).to_numpy(dtype=np.int64, copy=True)


def fit_standardization(features: np.ndarray, rows: np.ndarray, per: str = "channel", chunk: int = 1024) -> dict:
    """Mean and std over the training rows only: per channel (axis 1 of the cache) or per element."""
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
    return {key: torch.as_tensor(standardization[key], dtype=torch.float32, device=device) for key in ("mean", "std")}


def standardize(batch: torch.Tensor, standardization: dict) -> torch.Tensor:
    mean = torch.as_tensor(standardization["mean"], device=batch.device)
    std = torch.as_tensor(standardization["std"], device=batch.device)
    # Per element, the statistics have one clip's shape; per channel, one value per channel (axis 1).
    shape = (1, *mean.shape) if mean.ndim == batch.ndim - 1 else (1, -1) + (1,) * (batch.ndim - 2)
    return (batch.float() - mean.view(shape)) / std.view(shape)


@dataclass
class Batches:
    """Features kept in their cache dtype (float16) and standardized per batch, to bound memory."""
    features: torch.Tensor
    labels: torch.Tensor

    def batch_rows(self, batch_size: int, generator: torch.Generator | None = None):
        """Each batch's row numbers: in the generator's order, or in order without one."""
        order = (torch.randperm(len(self.labels), generator=generator) if generator is not None
                 else torch.arange(len(self.labels)))
        for start in range(0, len(order), batch_size):
            yield order[start:start + batch_size]

    def iterate(self, batch_size: int, generator: torch.Generator | None = None):
        for chosen in self.batch_rows(batch_size, generator):
            yield self.features[chosen], self.labels[chosen]


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times -weight backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x, weight: float):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.weight * grad, None


class SpeakerAdversary(nn.Module):
    """Guesses the training speaker from the model's last hidden layer through a gradient reversal, so
    that training pushes that layer to carry less of who speaks (domain-adversarial training)."""

    def __init__(self, width: int, n_speakers: int, weight: float):
        super().__init__()
        self.weight = weight
        self.net = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, n_speakers))

    def forward(self, embedding):
        return self.net(GradientReversal.apply(embedding, self.weight))


def class_weight_values(recipe: dict, train_labels: np.ndarray) -> np.ndarray | None:
    """The recipe's `class_weights`, one per emotion (float32), or None for unweighted."""
    weights = recipe.get("class_weights", "none")
    if weights == "balanced":
        present = np.unique(train_labels)
        values = np.ones(len(EMOTIONS), dtype=np.float32)
        values[present] = compute_class_weight("balanced", classes=present, y=train_labels)
        return values
    if isinstance(weights, (list, tuple)):
        return np.asarray(weights, dtype=np.float32)
    if weights in (None, "none"):
        return None
    raise ValueError(f"class_weights is {weights!r}; expected none, balanced or a list of 8 numbers")


def make_loss(recipe: dict, train_labels: np.ndarray, device) -> nn.Module:
    weights = class_weight_values(recipe, train_labels)
    weights = None if weights is None else torch.as_tensor(weights, device=device)
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=recipe.get("label_smoothing", 0.0))


def make_optimizer(recipe: dict, parameters):
    name = recipe.get("optimizer", "adam")
    options = {"lr": recipe["lr"], "weight_decay": recipe.get("weight_decay", 0.0)}
    if name == "adamw":
        return torch.optim.AdamW(parameters, **options)
    if name == "adam":
        return torch.optim.Adam(parameters, **options)
    raise ValueError(f"optimizer is {name!r}; expected adam or adamw")


def make_scheduler(recipe: dict, optimizer, epochs: int):
    name = recipe.get("scheduler", "none")
    if name == "plateau":  # steps on validation accuracy
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", patience=recipe.get("plateau_patience", 3),
            factor=recipe.get("plateau_factor", 0.5))
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name in (None, "none"):
        return None
    raise ValueError(f"scheduler is {name!r}; expected none, plateau or cosine")


@torch.no_grad()
def predict_logits(model: nn.Module, batches: Batches, standardization: dict, device,
                   batch_size: int = 256) -> torch.Tensor:
    model.eval()
    standardization = standardization_tensors(standardization, device)
    outputs = [model(standardize(x.to(device), standardization)).cpu()
               for x, _ in batches.iterate(batch_size)]
    return torch.cat(outputs) if outputs else torch.empty(0, len(EMOTIONS))


def partition_logits(model: nn.Module, features: np.ndarray, index: pd.DataFrame, assignments: pd.DataFrame,
                     standardization: dict, device, partition: str = "test") -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """(cache rows, actual class, logits) for the original clips of one partition, in cache order."""
    rows = np.sort(partition_rows(index, assignments)[partition])
    actual = labels_for(index, rows, assignments)
    batches = Batches(torch.from_numpy(np.array(features[rows])), torch.from_numpy(actual))
    return rows, actual, predict_logits(model, batches, standardization, device)


def predict_partition(model: nn.Module, features: np.ndarray, index: pd.DataFrame, assignments: pd.DataFrame,
                      standardization: dict, device, partition: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cache rows, actual class, predicted class) for the original clips of one partition, in cache order."""
    rows, actual, logits = partition_logits(model, features, index, assignments, standardization, device, partition)
    return rows, actual, logits.argmax(1).numpy()


def score_state(state: dict, card: dict, features: np.ndarray, index: pd.DataFrame, assignments: pd.DataFrame,
                device, partition: str = "test") -> dict:
    """Classification metrics of a `train_model` result (state, card) on one partition's original clips."""
    _, actual, predicted = predict_partition(restore_model(card, state, device), features, index, assignments,
                                             card["standardization"], device, partition)
    return classification_metrics(actual, predicted)


def mixed_loss(loss_fn, output, target, share: float = 1.0, partner: torch.Tensor | None = None):
    """The loss against `target`, or, for a mixup batch, share of it plus (1 - share) of the partners'."""
    loss = loss_fn(output, target)
    return loss if partner is None else share * loss + (1 - share) * loss_fn(output, target[partner])


@dataclass
class Fit:
    """One training from scratch: its rows' batches, their standardization, the model and its optimizer."""
    data: Batches
    standardization: dict
    standardization_t: dict
    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    mixup_alpha: float = 0.0
    mixup_rng: np.random.Generator | None = None
    speakers: torch.Tensor | None = None  # per training row, 0..n-1, where a speaker adversary trains
    adversary: SpeakerAdversary | None = None

    def train_one_epoch(self, batch_size: int, device) -> tuple[float, float]:
        """One pass over the rows in the generator's order; (mean loss, accuracy) on those batches.

        With `mixup_alpha` > 0 each batch is mixup's (Zhang et al. 2018): every standardized clip is mixed
        with another of the batch, weight lambda ~ Beta(alpha, alpha) per batch, and so are the two losses.
        With a speaker adversary its loss joins the emotion loss (which alone is reported).
        """
        self.model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for chosen in self.data.batch_rows(batch_size, self.generator):
            x = standardize(self.data.features[chosen].to(device), self.standardization_t)
            y = self.data.labels[chosen].to(device)
            self.optimizer.zero_grad(set_to_none=True)
            share, partner = 1.0, None
            if self.mixup_alpha > 0:
                share = float(self.mixup_rng.beta(self.mixup_alpha, self.mixup_alpha))
                partner = torch.randperm(len(chosen), generator=self.generator).to(device)
                x = share * x + (1 - share) * x[partner]
            if self.adversary is None:
                logits = self.model(x)
                loss = total = mixed_loss(self.loss_fn, logits, y, share, partner)
            else:
                embedding = self.model.embed(x)
                logits = self.model.classify(embedding)
                loss = mixed_loss(self.loss_fn, logits, y, share, partner)
                total = loss + mixed_loss(nn.functional.cross_entropy, self.adversary(embedding),
                                          self.speakers[chosen].to(device), share, partner)
            total.backward()
            self.optimizer.step()
            total_loss += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        return total_loss / seen, correct / seen


def training_batches(features: np.ndarray, index: pd.DataFrame, assignments: pd.DataFrame, rows: np.ndarray) -> Batches:
    rows = np.sort(rows)
    return Batches(torch.from_numpy(np.array(features[rows])), torch.from_numpy(labels_for(index, rows, assignments)))


def start_fit(arch: str, arch_params: dict, features: np.ndarray, index: pd.DataFrame, assignments: pd.DataFrame,
              rows: np.ndarray, *, seed: int, standardize_per: str, device) -> Fit:
    """A fresh model seeded with `seed`, to train on the cache `rows`, standardized on those rows only."""
    seed_everything(seed)
    recipe = arch_params["train"]
    data = training_batches(features, index, assignments, rows)
    standardization = fit_standardization(features, np.sort(rows), per=standardize_per)
    model = build_model(arch, tuple(features.shape[1:]), len(EMOTIONS), **arch_params.get("model", {})).to(device)
    for option in ("mixup_alpha", "speaker_adversary"):
        if float(recipe.get(option, 0.0)) < 0:
            raise ValueError(f"train.{option} is {recipe[option]}; expected 0 (off) or a positive number")
    speakers, adversary = None, None
    if recipe.get("speaker_adversary", 0.0):
        if not hasattr(model, "embedding_width"):
            raise ValueError(f"train.speaker_adversary: {arch} does not expose the embedding an adversary reads "
                             f"(embedding_width, embed, classify); whisper_mlp does")
        _, speaker_ids = np.unique(clip_values(index, np.sort(rows), assignments, "actor").to_numpy(),
                                   return_inverse=True)
        speakers = torch.from_numpy(speaker_ids.astype(np.int64))
        adversary = SpeakerAdversary(model.embedding_width, int(speaker_ids.max()) + 1,
                                     float(recipe["speaker_adversary"])).to(device)
    parameters = list(model.parameters()) + (list(adversary.parameters()) if adversary is not None else [])
    return Fit(data, standardization, standardization_tensors(standardization, device), model,
               make_loss(recipe, data.labels.numpy(), device), make_optimizer(recipe, parameters),
               torch.Generator().manual_seed(seed), float(recipe.get("mixup_alpha", 0.0)),
               np.random.default_rng(seed), speakers, adversary)


def fit_closed_form_members(model: nn.Module, data: Batches, standardization: dict, recipe: dict) -> dict | None:
    """Members that a model fits in closed form once its network has trained (whisper_mlp's logistic
    regression, `logistic_c`), fitted on `data`, the rows the network trained on, standardized as it saw
    them, with the recipe's class weights; what the card records of them, or None where the model has none."""
    if getattr(model, "logistic_c", None) is None:
        return None
    labels = data.labels.numpy()
    weights = class_weight_values(recipe, labels)
    return model.fit_logistic(standardize(data.features, standardization), labels,
                              None if weights is None else weights[labels])


def progress_label(kind: str, arch: str, metric_prefix: str) -> str:
    return f"{kind} ({arch}{', ' + metric_prefix.strip('/') if metric_prefix else ''})"


def refit_rows(index: pd.DataFrame, assignments: pd.DataFrame, copies: bool) -> np.ndarray:
    """Training and validation clips (with their copies when `copies`): never a test clip or its copies."""
    merged = assignments.assign(partition=assignments["partition"].replace({"validation": "train"}))
    return partition_rows(index, merged, copies=copies)["train"]


def final_model_rows(index: pd.DataFrame, assignments: pd.DataFrame, recipe: dict) -> np.ndarray:
    """The cache rows that the model `train_model` returns trained on under `recipe` (its `train` params):
    the refit's training and validation clips, or the training clips alone, with their copies as the recipe says."""
    copies = recipe.get("augmented_copies", True)
    if recipe.get("refit", False):
        return refit_rows(index, assignments, copies=copies)
    return partition_rows(index, assignments, copies=copies)["train"]


def refit_model(arch: str, arch_params: dict, features: np.ndarray, index: pd.DataFrame, assignments: pd.DataFrame,
                *, seed: int, batch_size: int, device, standardize_per: str, learning_rates: list[float],
                logger=None, metric_prefix: str = "", progress: bool = True) -> tuple[dict, dict]:
    """Train afresh on the training and validation clips for len(learning_rates) epochs, epoch e at
    learning_rates[e - 1]: the selection run's schedule up to its best epoch, so nothing is chosen on
    clips the model trains on. Returns (final state_dict, what the card records of it)."""
    rows = refit_rows(index, assignments, copies=arch_params["train"].get("augmented_copies", True))
    fit = start_fit(arch, arch_params, features, index, assignments, rows, seed=seed,
                    standardize_per=standardize_per, device=device)
    bar = tqdm(learning_rates, desc=progress_label("refit", arch, metric_prefix), unit="epoch", disable=not progress)
    for epoch, lr in enumerate(bar, start=1):
        for group in fit.optimizer.param_groups:
            group["lr"] = lr
        loss, accuracy = fit.train_one_epoch(batch_size, device)
        if logger is not None:
            logger.step = epoch - 1
            logger.log_metric(metric_prefix + "refit/train/loss", loss)
            logger.log_metric(metric_prefix + "refit/train/accuracy", accuracy)
            logger.make_summary()
    logistic = fit_closed_form_members(fit.model, fit.data, fit.standardization, arch_params["train"])
    state = {k: v.detach().cpu().clone() for k, v in fit.model.state_dict().items()}
    return state, {"standardization": fit.standardization, "epochs": len(learning_rates),
                   "train_clips": int(index["clip_id"].iloc[rows].nunique()), "train_rows": int(len(rows)),
                   **({"logistic": logistic} if logistic else {})}


def train_model(arch: str, arch_params: dict, features: np.ndarray, index: pd.DataFrame,
                assignments: pd.DataFrame, *, seed: int, batch_size: int, device: torch.device,
                standardize_per: str = "channel", logger=None, metric_prefix: str = "",
                progress: bool = True) -> tuple[dict, dict]:
    """Train `arch` on one fold's `assignments`; return (best state_dict, card).

    `batch_size` is the pipeline's default; the arch's recipe overrides it where its seed fixes one.
    `standardize_per` is the feature recipe's `standardize` (channel or element).
    With the recipe's `refit: true`, the returned state is instead a second model trained on the
    training and validation clips together for the best epoch's count (`refit_model`).

    `logger` is a DVCLive Live or None; `metric_prefix` (e.g. "fold_2/") keeps
    the curves of several folds apart in one Live, each starting at step 0.
    """
    recipe = arch_params["train"]
    batch_size = int(recipe.get("batch_size", batch_size))
    rows = partition_rows(index, assignments, copies=recipe.get("augmented_copies", True))
    if len(rows["train"]) == 0 or len(rows["validation"]) == 0:
        raise ValueError("the split left no training or no validation clips; check split params")
    fit = start_fit(arch, arch_params, features, index, assignments, rows["train"], seed=seed,
                    standardize_per=standardize_per, device=device)
    model, optimizer = fit.model, fit.optimizer
    validation = training_batches(features, index, assignments, rows["validation"])
    input_shape = tuple(features.shape[1:])
    epochs = int(recipe["epochs"])
    scheduler = make_scheduler(recipe, optimizer, epochs)
    patience = recipe.get("early_stopping_patience")

    best = {"accuracy": -1.0, "epoch": 0, "state": None}
    learning_rates = []  # each epoch's, for a refit
    bar = tqdm(range(1, epochs + 1), desc=progress_label("train", arch, metric_prefix), unit="epoch",
               disable=not progress)
    for epoch in bar:
        learning_rates.append(optimizer.param_groups[0]["lr"])
        train_loss, train_accuracy = fit.train_one_epoch(batch_size, device)
        val_logits = predict_logits(model, validation, fit.standardization_t, device)
        val_labels = validation.labels
        val_loss = nn.functional.cross_entropy(val_logits, val_labels).item()
        val_accuracy = (val_logits.argmax(1) == val_labels).float().mean().item()
        if scheduler is not None:
            scheduler.step(val_accuracy) if recipe.get("scheduler") == "plateau" else scheduler.step()
        if val_accuracy > best["accuracy"]:
            best = {"accuracy": val_accuracy, "epoch": epoch,
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        if logger is not None:
            logger.step = epoch - 1
            for name, value in (("train/loss", train_loss), ("train/accuracy", train_accuracy),
                                ("validation/loss", val_loss), ("validation/accuracy", val_accuracy),
                                ("lr", optimizer.param_groups[0]["lr"])):
                logger.log_metric(metric_prefix + name, value)
            logger.make_summary()
        # Redrawn with the count at the bar's own interval (TQDM_MININTERVAL in CI), not at every epoch.
        bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_accuracy:.3f}", refresh=False)
        if patience and epoch - best["epoch"] >= patience:
            break

    card = {
        "arch": arch,
        "model_options": arch_params.get("model", {}),
        "labels": list(EMOTIONS),
        "feature_recipe": None,  # filled in by the caller, who knows the cache's recipe
        "input_shape": list(input_shape),
        "standardization": fit.standardization,
        "train_recipe": recipe,
        "seed": seed,
        "batch_size": batch_size,
        "device": str(device),
        "epochs_run": epoch,
        "best_epoch": best["epoch"],
        "best_validation_accuracy": best["accuracy"],
        "train_clips": int(len(set(index["clip_id"].iloc[rows["train"]]))),
        "train_rows": int(len(rows["train"])),
        "validation_clips": int(len(rows["validation"])),
        "torch_version": torch.__version__,
    }
    if not recipe.get("refit", False):
        fit.model.load_state_dict(best["state"])
        logistic = fit_closed_form_members(fit.model, fit.data, fit.standardization, recipe)
        if logistic is None:
            return best["state"], card
        card["logistic"] = logistic
        return {k: v.detach().cpu().clone() for k, v in fit.model.state_dict().items()}, card
    state, refit = refit_model(arch, arch_params, features, index, assignments, seed=seed, batch_size=batch_size,
                               device=device, standardize_per=standardize_per,
                               learning_rates=learning_rates[:best["epoch"]], logger=logger,
                               metric_prefix=metric_prefix, progress=progress)
    card["standardization"] = refit.pop("standardization")  # the one the returned state was trained with
    if "logistic" in refit:
        card["logistic"] = refit.pop("logistic")
    card["refit"] = refit
    if logger is not None:  # DVCLive's step (and summary) stays the selection run's last epoch
        logger.step = epoch - 1
        logger.make_summary()
    return state, card
