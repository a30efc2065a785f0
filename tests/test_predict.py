"""`ser predict` on generated recordings of several formats, rates and lengths, and on bad files."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser.cli import main
from ser.corpus import EMOTIONS
from ser.predict import Predictor
from synthetic import tone


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    sf.write(folder / "a.wav", tone(5, 1, 44100, 2.0, stereo=True), 44100)
    sf.write(folder / "b.flac", tone(3, 2, 8000, 1.0), 8000)
    sf.write(folder / "c.ogg", tone(2, 3, 48000, 3.0), 48000, format="OGG", subtype="VORBIS")
    sf.write(folder / "long.wav", tone(4, 1, 16000, 20.0), 16000)
    return folder


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "garbage.wav").write_bytes(b"this is not audio")
    sf.write(folder / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(folder / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(folder / "short.wav", tone(1, 1, 16000, 0.1), 16000)
    return folder


def test_probabilities_for_every_format_rate_and_length(model_dir, clips):
    predictor = Predictor(model_dir, device="cpu")
    for name, windows in (("a.wav", 1), ("b.flac", 1), ("c.ogg", 1), ("long.wav", 6)):
        result = predictor.predict_file(clips / name)
        assert result.error is None, result.error
        assert result.windows == windows
        assert set(result.probabilities) == set(EMOTIONS)
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert result.emotion == max(result.probabilities, key=result.probabilities.get)


def test_long_recording_windows_cover_it_all(model_dir):
    predictor = Predictor(model_dir, device="cpu", window_seconds=6.0)
    signal = np.arange(int(16000 * 20.0), dtype=np.float32)
    pieces = predictor.windows(signal)
    assert all(len(p) == 96000 for p in pieces)
    assert pieces[0][0] == 0 and pieces[-1][-1] == signal[-1]


def test_folder_writes_csv_and_bad_files_are_named(model_dir, clips, bad, tmp_path, capsys):
    csv = tmp_path / "out.csv"
    status = main(["predict", str(clips), str(bad), "--model", str(model_dir), "--csv", str(csv), "--device", "cpu"])
    assert status == 1  # some files failed
    err = capsys.readouterr().err
    for name, why in (("garbage.wav", "cannot be read"), ("empty.wav", "no samples"),
                      ("silent.wav", "silent"), ("short.wav", "too short")):
        line = next(l for l in err.splitlines() if name in l)
        assert line.startswith("error: ") and why in line
    table = pd.read_csv(csv)
    assert len(table) == 8 and table["error"].notna().sum() == 4
    good = table[table["error"].isna()]
    assert set(good["emotion"]) <= set(EMOTIONS)
    assert np.allclose(good[list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-4)


def test_console_command_json_and_exit_status(model_dir, clips):
    command = [sys.executable, "-m", "ser.cli", "predict", str(clips / "b.flac"), "--model", str(model_dir), "--json"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert result["path"].endswith("b.flac") and result["emotion"] in EMOTIONS and result["error"] is None
    missing = subprocess.run([sys.executable, "-m", "ser.cli", "predict", "nowhere.wav", "--model", str(model_dir)],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "nowhere.wav" in missing.stderr


def test_missing_model_directory_is_explained(tmp_path, clips, capsys):
    assert main(["predict", str(clips / "a.wav"), "--model", str(tmp_path / "none")]) == 1
    assert "dvc repro" in capsys.readouterr().err
