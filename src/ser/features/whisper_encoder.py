"""Whisper's audio encoder in PyTorch, with every hidden state reachable.

CTranslate2's `encode` returns the last layer only. This module runs the same
encoder in PyTorch, from CTranslate2 weights (`model.bin`, converted here in
memory: the format is CTranslate2's `specs/model_spec.py`) or, where the hub
and `transformers` are at hand, from an `openai/whisper-*` checkpoint.

Clips are encoded at their own length: the sinusoidal position table is cut
to the clip's frames instead of padding every clip to Whisper's 30 s window.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# CTranslate2's DataType enum (include/ctranslate2/types.h), in its order.
CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # bfloat16 is read separately


class EncoderLayer(nn.Module):
    """Pre-norm Transformer layer: self-attention, then a GELU feed-forward, each with a residual."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)  # Whisper's key projection has no bias: its third is zero
        self.attention_out = nn.Linear(width, width)
        self.ffn_norm = nn.LayerNorm(width)
        self.ffn_in = nn.Linear(width, 4 * width)
        self.ffn_out = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, frames, width)
        batch, frames, width = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).view(batch, frames, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, frames, width)
        x = x + self.attention_out(attended)
        return x + self.ffn_out(F.gelu(self.ffn_in(self.ffn_norm(x))))


class WhisperEncoder(nn.Module):
    """Two convolutions (the second with stride 2), sinusoidal positions, `layers` Transformer layers."""

    def __init__(self, n_mels: int, width: int, heads: int, layers: int, max_frames: int = 1500):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(width, width, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(max_frames, width))
        self.layers = nn.ModuleList(EncoderLayer(width, heads) for _ in range(layers))
        self.final_norm = nn.LayerNorm(width)

    @property
    def n_states(self) -> int:
        return len(self.layers) + 1

    @property
    def width(self) -> int:
        return self.positions.shape[1]

    def forward(self, log_mel: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states for (batch, n_mels, 2 x frames) log-mel: the convolutions' output with positions,
        then each layer's output, the last one after the final layer norm; each (batch, frames, width)."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(log_mel)))).transpose(1, 2)
        if x.shape[1] > len(self.positions):
            raise ValueError(f"{x.shape[1]} frames is more than the encoder's {len(self.positions)} (30 s)")
        x = x + self.positions[: x.shape[1]]
        states = [x]
        for layer in self.layers:
            x = layer(x)
            states.append(x)
        states[-1] = self.final_norm(x)
        return states


def read_ctranslate2_variables(model_bin: str | Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 `model.bin` whose names start with `prefix`, as numpy arrays."""
    data = memoryview(Path(model_bin).read_bytes())
    position = 0

    def take(fmt: str):
        nonlocal position
        (value,) = struct.unpack_from(fmt, data, position)
        position += struct.calcsize(fmt)
        return value

    def take_string() -> str:
        nonlocal position
        length = take("H")
        text = bytes(data[position:position + length - 1]).decode("utf-8")
        position += length
        return text

    version = take("I")
    if version < 5:
        raise ValueError(f"{model_bin}: CTranslate2 binary version {version} is older than this reader (5+)")
    take_string()  # the spec's name
    take("I")  # its revision
    variables = {}
    for _ in range(take("I")):
        name = take_string()
        shape = [take("I") for _ in range(take("B"))]
        dtype_id, size = take("B"), take("I")
        if name.startswith(prefix):
            raw = data[position:position + size]
            if dtype_id == 5:  # bfloat16: the high half of a float32
                array = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                array = np.frombuffer(raw, CT2_DTYPES[dtype_id])
            variables[name] = array.reshape(shape)
        position += size
    return variables


def _ct2_weight(variables: dict, name: str) -> torch.Tensor:
    weight = variables[name].astype(np.float32)
    scale = variables.get(name + "_scale")
    if scale is not None:  # an int8 model: CTranslate2 stores round(w * scale) per output row
        weight = weight / scale.astype(np.float32).reshape(-1, *([1] * (weight.ndim - 1)))
    return torch.from_numpy(np.ascontiguousarray(weight))


def encoder_from_ctranslate2(model_dir: str | Path) -> WhisperEncoder:
    """Whisper's encoder with the weights of a CTranslate2 model directory, in float32."""
    variables = read_ctranslate2_variables(Path(model_dir) / "model.bin")
    if "encoder/conv1/weight" not in variables:
        raise ValueError(f"{model_dir}: model.bin holds no Whisper encoder (no encoder/conv1/weight)")
    layers = 1 + max(int(match.group(1)) for match in map(re.compile(r"encoder/layer_(\d+)/").match, variables)
                     if match)
    width, n_mels, _ = variables["encoder/conv1/weight"].shape
    heads = int(variables["encoder/num_heads"]) if "encoder/num_heads" in variables else _heads_from_config(model_dir)
    positions = variables["encoder/position_encodings/encodings"]
    encoder = WhisperEncoder(n_mels, width, heads, layers, max_frames=len(positions))
    state = {"conv1.weight": "encoder/conv1/weight", "conv1.bias": "encoder/conv1/bias",
             "conv2.weight": "encoder/conv2/weight", "conv2.bias": "encoder/conv2/bias",
             "positions": "encoder/position_encodings/encodings",
             "final_norm.weight": "encoder/layer_norm/gamma", "final_norm.bias": "encoder/layer_norm/beta"}
    for i in range(layers):
        ct2 = f"encoder/layer_{i}"
        for ours, theirs in (("attention_norm", "self_attention/layer_norm"), ("ffn_norm", "ffn/layer_norm")):
            state[f"layers.{i}.{ours}.weight"] = f"{ct2}/{theirs}/gamma"
            state[f"layers.{i}.{ours}.bias"] = f"{ct2}/{theirs}/beta"
        for ours, theirs in (("qkv", "self_attention/linear_0"), ("attention_out", "self_attention/linear_1"),
                             ("ffn_in", "ffn/linear_0"), ("ffn_out", "ffn/linear_1")):
            state[f"layers.{i}.{ours}.weight"] = f"{ct2}/{theirs}/weight"
            state[f"layers.{i}.{ours}.bias"] = f"{ct2}/{theirs}/bias"
    encoder.load_state_dict({ours: _ct2_weight(variables, theirs) for ours, theirs in state.items()})
    return encoder.eval()


def _heads_from_config(model_dir) -> int:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return int(config["encoder_attention_heads"])


def encoder_from_transformers(name: str) -> WhisperEncoder:
    """Whisper's encoder from a `transformers` checkpoint (a hub id such as openai/whisper-small, or its folder)."""
    from transformers import WhisperModel  # optional: only hub ids of openai/whisper-* need it

    source = WhisperModel.from_pretrained(name).encoder
    return encoder_from_transformers_module(source)


def encoder_from_transformers_module(source) -> WhisperEncoder:
    """Copy a transformers `WhisperEncoder`'s weights into ours (its q/k/v projections fused into one)."""
    config = source.config
    encoder = WhisperEncoder(config.num_mel_bins, config.d_model, config.encoder_attention_heads,
                             config.encoder_layers, max_frames=config.max_source_positions)
    theirs = {k: v.detach().float() for k, v in source.state_dict().items()}
    state = {"conv1.weight": theirs["conv1.weight"], "conv1.bias": theirs["conv1.bias"],
             "conv2.weight": theirs["conv2.weight"], "conv2.bias": theirs["conv2.bias"],
             "positions": theirs["embed_positions.weight"],
             "final_norm.weight": theirs["layer_norm.weight"], "final_norm.bias": theirs["layer_norm.bias"]}
    for i in range(config.encoder_layers):
        layer = f"layers.{i}"
        attention = f"{layer}.self_attn"
        state[f"{layer}.qkv.weight"] = torch.cat([theirs[f"{attention}.{p}_proj.weight"] for p in "qkv"])
        state[f"{layer}.qkv.bias"] = torch.cat([theirs[f"{attention}.q_proj.bias"],
                                                torch.zeros_like(theirs[f"{attention}.q_proj.bias"]),
                                                theirs[f"{attention}.v_proj.bias"]])
        pairs = (("attention_out", "self_attn.out_proj"), ("attention_norm", "self_attn_layer_norm"),
                 ("ffn_norm", "final_layer_norm"), ("ffn_in", "fc1"), ("ffn_out", "fc2"))
        for ours, their_name in pairs:
            for kind in ("weight", "bias"):
                state[f"{layer}.{ours}.{kind}"] = theirs[f"{layer}.{their_name}.{kind}"]
    encoder.load_state_dict(state)
    return encoder.eval()
