import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from ser.augment import augment_corpus, augment_signal, copy_generator
from ser.config import load_params
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
