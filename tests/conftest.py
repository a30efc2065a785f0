import ser  # noqa: F401  first, before numpy loads: the same arithmetic as the stages (see ser/__init__.py)

import sys
from pathlib import Path

import pytest
import torch

# The synthetic-corpus helper lives beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

from ser.checkpoint import save_checkpoint  # noqa: E402
from ser.corpus import EMOTIONS  # noqa: E402
from ser.models import build_model  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A real (untrained) cnn_gru_attn model directory on the MFCC recipe."""
    torch.manual_seed(0)
    model = build_model("cnn_gru_attn", (40, 200), 8)
    card = {"arch": "cnn_gru_attn", "model_options": {}, "labels": list(EMOTIONS), "input_shape": [40, 200],
            "feature_recipe": {"recipe": "mfcc", "n_mfcc": 40, "frames": 200, "n_fft": 2048, "hop_length": 512,
                               "sample_rate": 16000, "shape": [40, 200]},
            "standardization": {"mean": [0.0] * 40, "std": [50.0] * 40}}
    directory = tmp_path_factory.mktemp("model")
    save_checkpoint(directory, model.state_dict(), card)
    return directory
