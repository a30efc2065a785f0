import pytest
import torch

from ser.models import arch_names, build_model

# The input each arch is fed by its feature recipe in params.yaml.
INPUTS = {"whisper_mlp": (512,), "cnn_gru_attn": (40, 200)}


def test_every_registered_arch_has_an_input_here():
    assert set(arch_names()) == set(INPUTS)


@pytest.mark.parametrize("arch", sorted(INPUTS))
def test_forward_and_backward(arch):
    torch.manual_seed(0)
    model = build_model(arch, INPUTS[arch], 8)
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
