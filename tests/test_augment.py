import dataclasses
from pathlib import Path

import numpy as np
import pytest
import pandas as pd
import soundfile as sf

from ser.augment import augment_corpus, augment_signal, colored_noise, copy_generator, room_impulse
from ser.config import Channel, load_params
from ser.manifest import build_manifest
from synthetic import make_corpus

AUGMENT = load_params(Path(__file__).resolve().parents[1] / "params.yaml").augment


def augment_options(**changes):
    """params.yaml's augment section, with a test's changes."""
    return dataclasses.replace(AUGMENT, **changes)


def test_copies_are_bit_identical_across_runs_and_worker_counts(tmp_path):
    make_corpus(tmp_path / "raw", actors=(1,), song_actors=(), statements=(1,), seconds=0.5)
    manifest, _ = build_manifest(tmp_path / "raw", progress=False)
    manifest = manifest.head(3)
    config = augment_options(copies=2, seed=5)
    first = augment_corpus(manifest, tmp_path / "raw", tmp_path / "a", 16000, config, workers=2, progress=False)
    second = augment_corpus(manifest, tmp_path / "raw", tmp_path / "b", 16000, config, workers=1, progress=False)
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == 6 and set(first["copy"]) == {1, 2}
    for name in first["file"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert sf.info(str(tmp_path / "a" / name)).samplerate == 16000
    assert first["stretch_rate"].between(0.9, 1.1).all()
    assert first["pitch_semitones"].abs().le(2.0).all()
    # Each copy of each clip gets its own draws.
    assert first["stretch_rate"].nunique() == 6
    other_seed = augment_corpus(manifest, tmp_path / "raw", tmp_path / "c", 16000,
                                augment_options(copies=2, seed=6), workers=1, progress=False)
    assert not np.allclose(other_seed["stretch_rate"], first["stretch_rate"])


def test_augmentation_changes_length_and_adds_noise():
    rate = 16000
    signal = (0.5 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)
    config = augment_options(time_stretch=[1.1, 1.1], pitch_shift_semitones=0.0, noise_peak_fraction=0.01)
    out, drawn = augment_signal(signal, rate, copy_generator(1, "x", 1), config)
    assert out.dtype == np.float32 and abs(len(out) - rate / 1.1) < 200
    assert drawn["noise_std"] == __import__("pytest").approx(0.01 * 0.5, rel=0.05)
    clean, _ = augment_signal(signal, rate, copy_generator(1, "x", 1),
                              augment_options(time_stretch=[1.1, 1.1], pitch_shift_semitones=0.0,
                                            noise_peak_fraction=0.0))
    assert 0.003 < np.std(out - clean) < 0.007


def test_a_failed_run_leaves_no_output(tmp_path):
    manifest = pd.DataFrame({"clip_id": ["03-01-01-01-01-01-01"], "path": ["missing.wav"]})
    try:
        augment_corpus(manifest, tmp_path, tmp_path / "out", 16000, augment_options(), workers=1, progress=False)
    except Exception as error:
        assert "missing.wav" in str(error)
    else:
        raise AssertionError("a missing file must fail the stage")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


# What params.yaml's comment offers for augment.channel; a test changes one effect at a time.
CHANNEL = Channel(reverb_probability=0.5, rt60_seconds=[0.2, 0.8], direct_to_reverberant_db=[0, 12], snr_db=[5, 30],
                  noise_color=[0, 2], highpass_hz=[50, 300], lowpass_hz=[3400, 8000], band_gain_db=6,
                  mu_law_probability=0.2)


def channel_only(**changes):
    """Copies made by the channel effects alone: the seeds' three effects turned off."""
    return augment_options(time_stretch=[1.0, 1.0], pitch_shift_semitones=0.0, noise_peak_fraction=0.0,
                           channel=dataclasses.replace(CHANNEL, **changes))


def band_power(signal, rate, low, high):
    spectrum = np.abs(np.fft.rfft(signal)) ** 2
    frequency = np.fft.rfftfreq(len(signal), 1 / rate)
    return spectrum[(frequency >= low) & (frequency < high)].sum()


def speech_like(rate=16000, seconds=1.0):
    """Broadband bursts (a harmonic series with noise) between pauses, at a speech-like level."""
    t = np.arange(int(rate * seconds)) / rate
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 40))
    voiced = voiced + 0.3 * np.random.default_rng(0).normal(size=len(t))
    envelope = (np.sin(2 * np.pi * 2 * t) > 0).astype(float)
    return (0.1 * voiced * envelope / np.max(np.abs(voiced))).astype(np.float32)


def test_without_channel_a_copy_is_what_it_was():
    """`channel: null` (the default) draws nothing more, so the copies the kept results trained on stay the same bits."""
    signal = speech_like()
    out, drawn = augment_signal(signal, 16000, copy_generator(3, "x", 1), augment_options(channel=None))
    assert set(drawn) == {"stretch_rate", "pitch_semitones", "noise_std"}
    again, _ = augment_signal(signal, 16000, copy_generator(3, "x", 1), augment_options(channel=None))
    assert np.array_equal(out, again)


def test_channel_copies_are_seeded_and_differ_from_copy_to_copy():
    signal = speech_like()
    first, drawn = augment_signal(signal, 16000, copy_generator(3, "x", 1), channel_only())
    again, _ = augment_signal(signal, 16000, copy_generator(3, "x", 1), channel_only())
    other, other_drawn = augment_signal(signal, 16000, copy_generator(3, "x", 2), channel_only())
    assert np.array_equal(first, again) and not np.allclose(first, other)
    assert drawn["snr_db"] != other_drawn["snr_db"]
    assert len(first) == len(signal) and first.dtype == np.float32
    assert np.max(np.abs(first)) <= 1.0


def test_noise_is_added_at_the_drawn_snr_of_the_speech():
    signal = speech_like()
    effects = dict(reverb_probability=0.0, highpass_hz=[1, 1], lowpass_hz=[8000, 8000], band_gain_db=0.0,
                   mu_law_probability=0.0, noise_color=[0, 0])
    for snr in (5.0, 20.0):
        out, drawn = augment_signal(signal, 16000, copy_generator(1, "x", 1), channel_only(snr_db=[snr, snr], **effects))
        assert drawn["snr_db"] == snr
        # The level is brought back to the clip's peak, so compare in the pauses against the bursts' power.
        pauses = np.abs(signal) == 0
        noise_power = np.mean(out[pauses].astype(float) ** 2)
        speech_power = np.mean(out[~pauses].astype(float) ** 2) - noise_power
        assert abs(10 * np.log10(speech_power / noise_power) - snr) < 1.5


def test_the_band_and_the_telephone_codec_shape_the_copy():
    signal = speech_like()
    narrow = dict(reverb_probability=0.0, snr_db=[60, 60], band_gain_db=0.0, mu_law_probability=0.0,
                  highpass_hz=[300, 300], lowpass_hz=[3400, 3400])
    out, drawn = augment_signal(signal, 16000, copy_generator(1, "x", 1), channel_only(**narrow))
    assert drawn["lowpass_hz"] == pytest.approx(3400) and drawn["highpass_hz"] == pytest.approx(300)
    above, inside = band_power(out, 16000, 5000, 8000), band_power(out, 16000, 500, 3000)
    assert above / inside < 1e-3 < band_power(signal, 16000, 5000, 8000) / band_power(signal, 16000, 500, 3000)
    assert band_power(out, 16000, 0, 100) / inside < 1e-3
    codec, drawn = augment_signal(signal, 16000, copy_generator(1, "x", 1),
                                  channel_only(**{**narrow, "mu_law_probability": 1.0}))
    assert drawn["mu_law"] and not np.allclose(codec, out)
    # 8-bit mu-law: at most 256 levels.
    assert len(np.unique(codec)) <= 256 < len(np.unique(out))


def test_the_room_decays_by_60_db_in_rt60_and_keeps_its_direct_to_reverberant_ratio():
    rate = 16000
    impulse = room_impulse(np.random.default_rng(0), rate, rt60=0.5, direct_to_reverberant_db=6.0)
    assert len(impulse) == rate // 2 and impulse[0] == 1.0
    assert abs(10 * np.log10(1.0 / np.sum(impulse[1:] ** 2)) - 6.0) < 1e-6
    early, late = np.mean(impulse[1:800] ** 2), np.mean(impulse[-800:] ** 2)
    assert 50 < 10 * np.log10(early / late) < 65
    quiet = dict(snr_db=[80, 80], band_gain_db=0.0, mu_law_probability=0.0, highpass_hz=[1, 1],
                 lowpass_hz=[8000, 8000])
    reverberant, drawn = augment_signal(speech_like(), rate, copy_generator(1, "x", 1),
                                        channel_only(reverb_probability=1.0, **quiet))
    dry, _ = augment_signal(speech_like(), rate, copy_generator(1, "x", 1), channel_only(reverb_probability=0.0, **quiet))
    assert 0.2 <= drawn["reverb_rt60"] <= 0.8
    # The pauses fill with the room's tail.
    pauses = speech_like() == 0
    assert np.mean(reverberant[pauses] ** 2) > 100 * np.mean(dry[pauses] ** 2)


def test_noise_colour_tilts_the_spectrum():
    white, brown = (colored_noise(np.random.default_rng(0), 16000, exponent) for exponent in (0.0, 2.0))
    assert abs(np.mean(white ** 2) - 1) < 1e-6 and abs(np.mean(brown ** 2) - 1) < 1e-6
    ratio = lambda x: band_power(x, 16000, 50, 500) / band_power(x, 16000, 4000, 8000)  # noqa: E731
    assert ratio(white) < 0.2 < 100 < ratio(brown)
