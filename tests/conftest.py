import ser  # noqa: F401  first, before numpy loads: the same arithmetic as the stages (see ser/__init__.py)

import sys
from pathlib import Path

import pytest
import torch

# The synthetic-corpus helper lives beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

from ser.card import ModelCard  # noqa: E402
from ser.checkpoint import save_checkpoint  # noqa: E402
from ser.corpus import EMOTIONS  # noqa: E402
from ser.models import build_model  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A real (untrained) cnn_gru_attn model directory on the MFCC recipe."""
    torch.manual_seed(0)
    model = build_model("cnn_gru_attn", (40, 200), 8)
    # Untrained: no epoch ran, no clip was seen.
    card = ModelCard(arch="cnn_gru_attn", model_options={}, labels=list(EMOTIONS), input_shape=[40, 200],
                     feature_recipe={"recipe": "mfcc", "n_mfcc": 40, "frames": 200, "n_fft": 2048, "hop_length": 512,
                                     "sample_rate": 16000, "shape": [40, 200], "standardize": "channel"},
                     standardization={"mean": [0.0] * 40, "std": [50.0] * 40}, train_recipe={}, seed=0, batch_size=0,
                     device="cpu", epochs_run=0, best_epoch=0, best_validation_accuracy=0.0, train_clips=0,
                     train_rows=0, validation_clips=0, torch_version=torch.__version__,
                     split={"protocol": "random", "train_corpora": ["ravdess"]})
    directory = tmp_path_factory.mktemp("model")
    save_checkpoint(directory, model.state_dict(), card)
    return directory
