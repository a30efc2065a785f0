import pytest
import soundfile as sf

from ser.manifest import MANIFEST_COLUMNS, BadCorpus, build_manifest
from synthetic import make_corpus


def test_manifest_decodes_every_clip(tmp_path):
    files = make_corpus(tmp_path, actors=(1, 2), song_actors=(1,), statements=(1,))
    manifest, skipped = build_manifest(tmp_path, progress=False)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert len(manifest) == len(files) == 2 * 8 + 6 and skipped.empty
    assert set(manifest["vocal_channel"]) == {"speech", "song"}
    stereo = manifest[manifest["channels"] == 2]
    assert len(stereo) == 1 and stereo.iloc[0]["emotion"] == "neutral"
    assert manifest["sample_rate"].eq(22050).all()
    assert manifest["duration"].between(0.79, 0.81).all()
    assert manifest["path"].str.startswith("Audio_S").all()


def test_bad_files_are_named_and_stop_the_stage(tmp_path):
    make_corpus(tmp_path, actors=(1,), song_actors=(), statements=(1,))
    folder = tmp_path / "Audio_Speech_Actors_01-24" / "Actor_01"
    (folder / "03-01-05-01-01-01-01-copy.wav").write_bytes(b"RIFF")          # malformed name
    (folder / "03-01-05-02-02-01-01.wav").write_bytes(b"not audio at all")   # unreadable
    sf.write(folder / "03-01-06-02-02-01-01.wav", [], 16000)                  # empty
    with pytest.raises(BadCorpus) as error:
        build_manifest(tmp_path, progress=False)
    message = str(error.value)
    for name in ("03-01-05-01-01-01-01-copy.wav", "03-01-05-02-02-01-01.wav", "03-01-06-02-02-01-01.wav"):
        assert name in message
    assert "3 unusable" in message and "skip_bad_files" in message


def test_skipping_bad_files_lists_them(tmp_path):
    make_corpus(tmp_path, actors=(1,), song_actors=(), statements=(1,))
    bad = tmp_path / "Audio_Speech_Actors_01-24" / "Actor_01" / "03-01-05-02-02-01-01.wav"
    bad.write_bytes(b"garbage")
    manifest, skipped = build_manifest(tmp_path, skip_bad_files=True, progress=False)
    assert len(manifest) == 8
    assert list(skipped["path"]) == ["Audio_Speech_Actors_01-24/Actor_01/03-01-05-02-02-01-01.wav"]


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(BadCorpus, match="no audio files"):
        build_manifest(tmp_path, progress=False)


def test_a_truncated_flac_is_named(tmp_path):
    import numpy as np

    make_corpus(tmp_path, actors=(1,), song_actors=(), statements=(1,))
    folder = tmp_path / "Audio_Speech_Actors_01-24" / "Actor_01"
    whole = folder / "03-01-05-02-02-01-01.flac"
    rng = np.random.default_rng(0)
    sf.write(whole, 0.1 * rng.standard_normal(22050 * 3), 22050, format="FLAC")
    data = whole.read_bytes()
    whole.write_bytes(data[: len(data) // 3])  # cut to a third: the header still promises every frame
    assert sf.info(str(whole)).frames == 22050 * 3
    with pytest.raises(BadCorpus) as error:
        build_manifest(tmp_path, progress=False)
    assert "03-01-05-02-02-01-01.flac" in str(error.value) and "1 unusable" in str(error.value)
    assert "truncated or corrupt" in str(error.value) or "cannot be decoded" in str(error.value)
