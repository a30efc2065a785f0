"""Running a trained network over cached features: batches, logits, a partition's predictions.

Evaluation, prediction and cross-corpus scoring import this, never the training loop, so an edit to
the loop re-runs only the train stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from .checkpoint import restore_model
from .corpus import EMOTIONS
from .evaluation import classification_metrics
from .rows import labels_for, partition_rows
from .standardization import standardization_tensors, standardize


@dataclass
class Batches:
    """Features kept in their cache dtype (float16) and standardized per batch, to bound memory."""
    features: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def of_rows(cls, features: np.ndarray, index: pd.DataFrame, assignments: pd.DataFrame, rows: np.ndarray):
        """The cache `rows` (in cache order) with their clips' classes."""
        rows = np.sort(rows)
        return cls(torch.from_numpy(np.array(features[rows])), torch.from_numpy(labels_for(index, rows, assignments)))

    def batch_rows(self, batch_size: int, generator: torch.Generator | None = None):
        """Each batch's row numbers: in the generator's order, or in order without one."""
        order = (torch.randperm(len(self.labels), generator=generator) if generator is not None
                 else torch.arange(len(self.labels)))
        for start in range(0, len(order), batch_size):
            yield order[start:start + batch_size]

    def iterate(self, batch_size: int, generator: torch.Generator | None = None):
        for chosen in self.batch_rows(batch_size, generator):
            yield self.features[chosen], self.labels[chosen]


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
    batches = Batches.of_rows(features, index, assignments, rows)
    return rows, batches.labels.numpy(), predict_logits(model, batches, standardization, device)


def predict_partition(model: nn.Module, features: np.ndarray, index: pd.DataFrame, assignments: pd.DataFrame,
                      standardization: dict, device, partition: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cache rows, actual class, predicted class) for the original clips of one partition, in cache order."""
    rows, actual, logits = partition_logits(model, features, index, assignments, standardization, device, partition)
    return rows, actual, logits.argmax(1).numpy()


def score_state(state: dict, card: dict, features: np.ndarray, index: pd.DataFrame, assignments: pd.DataFrame,
                device, partition: str = "test") -> dict:
    """Classification metrics of a trained (state, card) on one partition's original clips."""
    _, actual, predicted = predict_partition(restore_model(card, state, device), features, index, assignments,
                                             card.standardization, device, partition)
    return classification_metrics(actual, predicted)
