"""The model card: what a trained model directory says about itself, so it loads without params.yaml.

Written as JSON beside the weights (models/<run>/model.json, and inside model.pt with the statistics),
read back by `ModelCard.from_json`, which refuses a card it does not understand rather than guess.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class ModelCard:
    arch: str                          # a name of ser.models' registry
    model_options: dict                # archs.<arch>.model, as the network was built
    labels: list[str]                  # the classes, in the order of the network's outputs
    feature_recipe: dict               # the feature cache's recipe: how a recording becomes the input
    input_shape: list[int]             # one clip's features
    standardization: dict              # mean and std the network's input is standardized with
    train_recipe: dict                 # archs.<arch>.train, as trained
    seed: int
    batch_size: int
    device: str
    epochs_run: int
    best_epoch: int                    # chosen on validation clips (the refit, where on, retrains this many)
    best_validation_accuracy: float
    train_clips: int
    train_rows: int                    # clips and their augmented copies
    validation_clips: int
    torch_version: str
    split: dict = field(default_factory=dict)   # protocol, repeat, fold, seeds, train_corpora, test side
    refit: dict | None = None          # the second training on training + validation clips, where on
    logistic: dict | None = None       # the arch's closed-form member (whisper_mlp's logistic regression)
    adaptation: dict | None = None     # standardization within groups (ser.adaptation), where trained so
    # What trained the model. None on a card written before ser recorded them (or, for `commit`, outside git).
    trained_on: dict | None = None     # the kept model's clips (ser.rows.trained_on): corpora, speakers, per emotion
    params: dict | None = None         # params.yaml's values that shaped this model, as params.yaml nests them
    commit: dict | None = None         # the code's commit (id) and whether src/ or stages/ differed from it

    def to_json(self) -> dict:
        """A plain dict; fields that do not apply (None) are left out."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict, source: str = "model card") -> ModelCard:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown card keys {unknown}; was it written by a newer version of ser?")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name not in data and f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
        if missing:
            raise ValueError(f"{source}: the card lacks {missing}")
        return cls(**data)
