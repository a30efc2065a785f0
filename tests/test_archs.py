"""Each spectrogram arch trains on the synthetic corpus with its own feature and training recipe from params.yaml.

(`whisper_mlp` goes through the same path in the end-to-end `dvc repro` test.)
"""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ser.checkpoint import load_checkpoint, save_checkpoint
from ser.config import load_params
from ser.corpus import parse_name
from ser.features import compute_feature_cache, load_feature_cache, make_recipe
from ser.inference import Batches, predict_logits
from ser.models import build_model
from ser.runtime import seed_everything
from ser.split import assign_partitions
from ser.training import train_model
from synthetic import make_corpus

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
SPECTROGRAM_ARCHS = sorted(a for a, s in PARAMS.archs.items() if not s.features["recipe"].startswith("whisper"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    paths = make_corpus(root, actors=(1, 2, 3, 4), song_actors=(), seconds=0.8)
    manifest = pd.DataFrame([{**parse_name(p).__dict__, "path": str(p)} for p in paths])
    return root, manifest


@pytest.mark.parametrize("arch", SPECTROGRAM_ARCHS)
def test_short_training_run_with_the_arch_recipe(arch, corpus, tmp_path):
    _, manifest = corpus
    section = PARAMS.archs[arch]
    recipe = make_recipe(section.features, PARAMS.audio.sample_rate)
    compute_feature_cache(recipe, manifest.assign(copy=0), tmp_path / "features", workers=1, progress=False)
    features, index, recipe_config = load_feature_cache(tmp_path / "features")
    split = assign_partitions(manifest, "random", test_fraction=0.25, validation_fraction=0.2, seed=1)
    short = dataclasses.replace(section, train=dataclasses.replace(section.train, epochs=2))
    state, card = train_model(arch, short, features, index, split, feature_recipe=recipe_config, seed=0,
                              batch_size=PARAMS.train.batch_size, device=torch.device("cpu"), progress=False)
    assert card.epochs_run == 2 and card.input_shape == list(recipe.shape)
    # The optimizer moved the weights: the seeded network as it was built is not what came back (parameters
    # only: batch norm's running statistics change in training mode without any optimizer step).
    seed_everything(0)
    initial = dict(build_model(arch, recipe.shape, 8, **section.model).named_parameters())
    unmoved = [name for name, value in initial.items() if torch.equal(value.detach(), state[name])]
    assert not unmoved, f"{arch}: training left {unmoved} as they were built"
    assert card.batch_size == (section.train.batch_size or PARAMS.train.batch_size)
    save_checkpoint(tmp_path / "model", state, card)
    model, loaded = load_checkpoint(tmp_path / "model")
    assert loaded.feature_recipe["recipe"] == section.features["recipe"]
    batch = Batches(torch.from_numpy(np.array(features[:5])), torch.zeros(5, dtype=torch.long))
    logits = predict_logits(model, batch, loaded.standardization, "cpu")
    assert logits.shape == (5, 8) and torch.isfinite(logits).all()
