from pathlib import Path

import pytest
import torch

from ser.features import make_recipe
from ser.models import arch_names, build_model
from ser.config import load_params

# The input each arch is fed by its feature recipe in params.yaml.
INPUTS = {"whisper_mlp": (7, 2, 512), "cnn_gru_attn": (40, 200), "cnn_bilstm_attn": (5, 64, 200),
          "deep_cnn": (2, 128, 110), "cnn_bilstm_attn_logmel": (1, 128, 300)}
PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")


def test_every_registered_arch_has_an_input_here():
    assert set(arch_names()) == set(INPUTS)


def test_every_arch_has_a_params_section_and_the_shape_its_recipe_makes():
    assert set(PARAMS.archs) == set(arch_names())
    for arch, section in PARAMS.archs.items():
        if not section.features["recipe"].startswith("whisper"):  # its shape comes from the Whisper model
            assert make_recipe(section.features, PARAMS.audio.sample_rate).shape == INPUTS[arch], arch


@pytest.mark.parametrize("arch", sorted(INPUTS))
def test_forward_and_backward(arch):
    torch.manual_seed(0)
    model = build_model(arch, INPUTS[arch], 8, **PARAMS.archs[arch].model)
    x = torch.randn(4, *INPUTS[arch])
    logits = model(x)
    assert logits.shape == (4, 8)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_unknown_arch_lists_the_known_ones():
    with pytest.raises(KeyError, match="whisper_mlp"):
        build_model("transformer_xxl", (10,), 8)


def test_deep_cnn_says_when_the_input_is_too_small_for_its_poolings():
    with pytest.raises(ValueError, match="too small"):
        build_model("deep_cnn", (2, 16, 16), 8)


def test_an_arch_is_a_network_and_only_whisper_mlp_fits_after_training():
    from ser.models import Network, register
    with pytest.raises(TypeError, match="must subclass ser.models.Network"):
        register("plain_module")(torch.nn.Linear)
    inputs, labels = torch.randn(16, *INPUTS["cnn_gru_attn"]), torch.arange(16) % 8
    assert build_model("cnn_gru_attn", INPUTS["cnn_gru_attn"], 8).after_training(inputs, labels.numpy(), None) is None
    mlp = build_model("whisper_mlp", (3, 2, 4), 8, hidden=[4], logistic_c=1.0)
    assert isinstance(mlp, Network)
    fitted = mlp.after_training(torch.randn(16, 3, 2, 4), labels.numpy(), None)
    assert fitted["train_rows"] == 16 and bool(mlp.logistic_fitted)
    assert build_model("whisper_mlp", (3, 2, 4), 8, hidden=[4]).after_training(inputs, labels.numpy(), None) is None
