"""`ser predict` on generated recordings of several formats, rates and lengths, on bad files, and on
recordings without speech."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser.cli import main
from ser.corpus import EMOTIONS
from ser.predict import FAILED, NO_SPEECH, PREDICTED, Predictor
from synthetic import tone, voice

# Speech for the voice activity detector, which synthetic tones are not: a synthetic voice, written here
# in other formats, rates and lengths (no corpus needed, so no test of speech detection can skip).
VOICE_RATE = 22050
VOICE = voice(3.0, VOICE_RATE)


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
    predictor = Predictor(model_dir, device="cpu", detect_speech=False)  # tones are not speech
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
    status = main(["predict", str(clips), str(bad), "--model", str(model_dir), "--csv", str(csv), "--device", "cpu",
                   "--no-speech-check"])
    assert status == 1  # some files failed
    captured = capsys.readouterr()
    for name, why in (("garbage.wav", "cannot be read"), ("empty.wav", "no samples"), ("short.wav", "too short")):
        line = next(l for l in captured.err.splitlines() if name in l)
        assert line.startswith("error: ") and why in line
    # Silence is an answer, not a failure, even with the detector off.
    assert any(l.endswith("silent.wav\t" + NO_SPEECH) for l in captured.out.splitlines())
    table = pd.read_csv(csv)
    assert len(table) == 8 and table["error"].notna().sum() == 3
    assert table["status"].value_counts().to_dict() == {PREDICTED: 4, FAILED: 3, NO_SPEECH: 1}
    good = table[table["status"] == PREDICTED]
    assert set(good["emotion"]) <= set(EMOTIONS)
    assert np.allclose(good[list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-4)


def test_console_command_json_and_exit_status(model_dir, clips):
    command = [sys.executable, "-m", "ser.cli", "predict", str(clips / "b.flac"), "--model", str(model_dir), "--json",
               "--no-speech-check"]
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


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """A folder of good recordings made from one voice: other formats, rates, channels, lengths."""
    folder = tmp_path_factory.mktemp("speech")
    signal, rate = VOICE, VOICE_RATE
    sf.write(folder / "stereo-44k.wav", np.stack([signal, 0.5 * signal], axis=1), rate)
    sf.write(folder / "speech.ogg", signal, rate, format="OGG", subtype="VORBIS")
    sf.write(folder / "speech.mp3", signal, rate, format="MP3")
    sf.write(folder / "long.flac", np.tile(signal, 4), rate)
    sf.write(folder / "clipped.wav", np.clip(8 * signal, -1, 1), rate)
    sf.write(folder / "no-extension", signal, rate, format="WAV")  # named on the command line, not found in a scan
    return folder


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """One of each kind of bad file, and recordings with nothing to judge."""
    folder = tmp_path_factory.mktemp("broken")
    signal, rate = VOICE, VOICE_RATE
    (folder / "text.wav").write_text("this is a text file, renamed")
    sf.write(folder / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(folder / "short.wav", signal[: rate // 10], rate)
    nan = signal.copy()
    nan[1000], nan[2000] = np.nan, np.inf
    sf.write(folder / "nan.wav", nan, rate, subtype="FLOAT")
    sf.write(folder / "whole.flac", signal, rate)
    data = (folder / "whole.flac").read_bytes()
    (folder / "truncated.flac").write_bytes(data[: len(data) // 3])
    (folder / "whole.flac").unlink()
    sf.write(folder / "silent.wav", np.zeros(3 * 16000, dtype=np.float32), 16000)
    sf.write(folder / "noise.wav", 0.3 * np.random.default_rng(0).standard_normal(3 * 16000).astype(np.float32), 16000)
    sf.write(folder / "tone.wav", tone(3, 1, 16000, 3.0), 16000)
    return folder


def test_a_mixed_folder_gives_one_line_per_file_and_predicts_every_good_one(model_dir, speech, broken, tmp_path,
                                                                           capsys):
    csv = tmp_path / "all.csv"
    status = main(["predict", str(speech), str(broken), str(speech / "no-extension"), "--model", str(model_dir),
                   "--csv", str(csv), "--device", "cpu"])
    assert status == 1  # some files failed; every other one still has its answer
    captured = capsys.readouterr()
    for name, why in (("text.wav", "cannot be read"), ("empty.wav", "no samples"), ("short.wav", "too short"),
                      ("nan.wav", "contains NaN/Inf samples"), ("truncated.flac", "")):
        [line] = [l for l in captured.err.splitlines() if name in l]
        assert line.startswith(f"error: {broken / name}: ") and why in line
    table = pd.read_csv(csv).set_index(pd.read_csv(csv)["path"].map(lambda p: Path(p).name))
    assert len(table) == 5 + 8 + 1  # the folders' audio files, and the one named outright
    good = ["stereo-44k.wav", "speech.ogg", "speech.mp3", "long.flac", "clipped.wav", "no-extension"]
    assert (table.loc[good, "status"] == PREDICTED).all()
    assert table.loc[good, "emotion"].isin(EMOTIONS).all()
    assert np.allclose(table.loc[good, list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-4)
    clip_seconds = len(VOICE) / VOICE_RATE
    assert (table.loc[good, "speech_seconds"] > 0.5).all() and (table.loc[good, "speech_seconds"] <= 4 * clip_seconds).all()
    assert (table.loc[["silent.wav", "noise.wav", "tone.wav"], "status"] == NO_SPEECH).all()
    assert table.loc[["silent.wav", "noise.wav", "tone.wav"], "emotion"].isna().all()
    assert (table["status"] == FAILED).sum() == 5
    for name in ("noise.wav", "tone.wav", "silent.wav"):
        assert f"{broken / name}\t{NO_SPEECH}" in captured.out.splitlines()


def test_a_failure_in_the_features_or_the_model_is_that_files_error_only(model_dir, speech, monkeypatch):
    predictor = Predictor(model_dir, device="cpu")
    extract = predictor.recipe.extract
    broken_once = {"calls": 0}

    def fails_first(signal):
        broken_once["calls"] += 1
        if broken_once["calls"] == 1:
            raise RuntimeError("out of memory in the encoder")
        return extract(signal)

    monkeypatch.setattr(predictor.recipe, "extract", fails_first)
    first, second = (predictor.predict_file(speech / name) for name in ("speech.ogg", "clipped.wav"))
    assert first.status == FAILED and "speech.ogg" in first.error and "out of memory" in first.error
    assert second.status == PREDICTED and second.emotion in EMOTIONS


def test_a_wav_cut_short_is_judged_on_what_it_holds_with_a_warning(model_dir, tmp_path, capsys):
    whole, cut = tmp_path / "whole.wav", tmp_path / "cut.wav"
    for path in (whole, cut):
        sf.write(path, VOICE, VOICE_RATE, subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[: -2 * VOICE_RATE - 1])  # a second, and a byte of the frame before, gone
    held = len(VOICE) - VOICE_RATE - 1
    status = main(["predict", str(whole), str(cut), "--model", str(model_dir), "--json", "--device", "cpu"])
    assert status == 0  # a warning, not a failure
    captured = capsys.readouterr()
    [line] = [l for l in captured.err.splitlines() if "cut.wav" in l]
    assert line == (f"warning: {cut}: truncated: header says {len(VOICE)} frames, the file holds {held}; "
                    "judged on what it holds")
    results = {Path(r["path"]).name: r for r in json.loads(captured.out)}
    assert results["cut.wav"]["status"] == PREDICTED and results["cut.wav"]["emotion"] in EMOTIONS
    assert results["cut.wav"]["warning"] == line.removeprefix("warning: ")
    assert results["cut.wav"]["duration"] == round(held / VOICE_RATE, 2)
    assert results["whole.wav"]["status"] == PREDICTED and results["whole.wav"]["warning"] is None
    assert "whole.wav" not in captured.err
