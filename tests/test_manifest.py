import numpy as np
import pytest
import soundfile as sf

from ser.audio import header_frames
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


def _with_junk_before_data(path):
    """The WAV at `path` with an odd-sized chunk (and its pad byte) between `fmt ` and `data`."""
    data = path.read_bytes()
    at = data.index(b"data")
    path.write_bytes(data[:at] + b"JUNK" + (3).to_bytes(4, "little") + b"abc\0" + data[at:])


@pytest.mark.parametrize("name, options", [("pcm.wav", {}), ("rifx.wav", {"endian": "BIG", "subtype": "PCM_24"}),
                                           ("extensible.wav", {"format": "WAVEX", "subtype": "FLOAT"}),
                                           ("ulaw.wav", {"subtype": "ULAW"}), ("junk.wav", {})])
def test_a_wav_header_is_read_through_its_chunks(tmp_path, name, options):
    path = tmp_path / name
    sf.write(path, np.zeros((1000, 2), dtype=np.float32), 16000, **options)
    if name == "junk.wav":
        _with_junk_before_data(path)
    assert header_frames(path) == (1000, 1000)
    frame = sf.info(str(path)).channels * {"PCM_24": 3, "FLOAT": 4, "ULAW": 1}.get(options.get("subtype"), 2)
    path.write_bytes(path.read_bytes()[: -(300 * frame + 1)])  # 300 frames and a byte of the next are gone
    assert header_frames(path) == (1000, 699)


def test_a_flac_header_states_its_total_and_other_files_none(tmp_path):
    sf.write(tmp_path / "whole.flac", np.zeros(1000, dtype=np.float32), 16000)
    assert header_frames(tmp_path / "whole.flac") == (1000, None)  # only a decoder counts what its frames hold
    data = bytearray((tmp_path / "whole.flac").read_bytes())
    data[21:26] = bytes([data[21] & 0xF0, 0, 0, 0, 0])  # STREAMINFO's 36-bit total: 0, "unknown"
    (tmp_path / "unknown.flac").write_bytes(bytes(data))
    assert header_frames(tmp_path / "unknown.flac") is None
    sf.write(tmp_path / "adpcm.wav", np.zeros(1000, dtype=np.float32), 16000, subtype="IMA_ADPCM")
    assert header_frames(tmp_path / "adpcm.wav") is None  # a block holds many frames: only the decoder knows
    sf.write(tmp_path / "speech.ogg", np.zeros(1000, dtype=np.float32), 16000, format="OGG")
    assert header_frames(tmp_path / "speech.ogg") is None


def test_a_wav_cut_short_is_named_with_both_counts(tmp_path):
    make_corpus(tmp_path, actors=(1,), song_actors=(), statements=(1,))
    folder = tmp_path / "Audio_Speech_Actors_01-24" / "Actor_01"
    for name, options in (("03-01-03-02-02-01-01.wav", {}), ("03-01-04-02-02-01-01.wav", {"endian": "BIG"}),
                          ("03-01-06-02-02-01-01.wav", {"format": "WAVEX", "subtype": "FLOAT"})):
        sf.write(folder / name, 0.1 * np.random.default_rng(0).standard_normal(22050), 22050, **options)
    manifest, skipped = build_manifest(tmp_path, progress=False)  # whole WAVs of each kind pass
    assert len(manifest) == 8 + 3 and skipped.empty
    cut = folder / "03-01-05-02-02-01-01.wav"
    sf.write(cut, 0.1 * np.random.default_rng(1).standard_normal(22050), 22050, subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[:-10001])  # mid-data: 5000 frames and half of one more are gone
    assert sf.info(str(cut)).frames == 17049  # libsndfile takes the shorter length for the file's own
    with pytest.raises(BadCorpus) as error:
        build_manifest(tmp_path, progress=False)
    assert "1 unusable" in str(error.value)
    assert f"03-01-05-02-02-01-01.wav: truncated or corrupt: header says 22050 frames, the file holds 17049" \
        in str(error.value)
    manifest, skipped = build_manifest(tmp_path, skip_bad_files=True, progress=False)
    assert len(manifest) == 8 + 3 and "03-01-05-02-02-01-01" not in set(manifest["clip_id"])
    assert skipped.to_dict("records") == [
        {"path": "Audio_Speech_Actors_01-24/Actor_01/03-01-05-02-02-01-01.wav",
         "problem": "truncated or corrupt: header says 22050 frames, the file holds 17049"}]
