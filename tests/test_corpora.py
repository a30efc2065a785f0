"""Corpora besides RAVDESS (src/ser/corpora.py): descriptions, copies checked against their sums, manifest rows."""

import hashlib

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser.corpora import BadCorpusSpec, check_description, fetch_corpora, manifest_rows, read_label
from ser.manifest import build_manifest
from synthetic import make_corpus, make_folder_corpus

EMOVO_LIKE = {"folder": "unused", "label": {"separator": "-", "field": 0}, "speaker": {"separator": "-", "field": 1},
              "classes": {"rab": "angry", "tri": "sad", "neu": "neutral", "sor": "surprised"}}


def write_clip(path, tone=220.0, seconds=0.3, rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * tone * t)).astype(np.float32), rate)


def emovo_like(folder):
    """<emotion>-<speaker>-<sentence>, speakers in folders, as EMOVO names its files."""
    for i, (emotion, speaker) in enumerate([("rab", "f1"), ("tri", "f1"), ("neu", "m1"), ("sor", "m1"), ("rab", "m2")]):
        write_clip(folder / speaker / f"{emotion}-{speaker}-b{i}.wav", tone=200.0 + 30 * i)
    return folder


@pytest.mark.parametrize("change, named", [
    ({"speaker": None}, "corpora.x: missing ['speaker']"),
    ({"labels": {"position": 1}}, "unknown key(s) ['labels']"),
    ({"label": {"position_typo": 1}}, "corpora.x.label"),
    ({"speaker": {"pattern": "[0-9]+"}}, "needs a named group"),
    ({"speaker": {"pattern": "(?P<speaker>[0-9]+"}}, "is not a regular expression"),
    ({"classes": {"rab": "furious"}}, "['furious'] are not RAVDESS emotions"),
])
def test_a_bad_description_is_named_with_its_key(change, named):
    spec = {**EMOVO_LIKE, **change}
    spec = {key: value for key, value in spec.items() if value is not None}
    with pytest.raises(BadCorpusSpec) as error:
        check_description("x", spec, needs_speaker=True)
    assert named in str(error.value)


def test_rules_read_speakers_as_well_as_labels(tmp_path):
    path = tmp_path / "Angry" / "1157_kz_acik.flac"
    assert read_label(path, {"folder": True}) == "Angry"
    assert read_label(path, {"separator": "_", "field": 0}) == "1157"
    assert read_label(tmp_path / "03a01Fa.wav", {"pattern": "^(?P<speaker>[0-9]{2})"}) == "03"


def test_manifest_rows_carry_corpus_speaker_and_unique_ids(tmp_path):
    folder = emovo_like(tmp_path / "emovo")
    rows, problems, left_out = manifest_rows("emovo", EMOVO_LIKE, folder)
    assert not problems and not left_out and len(rows) == 5
    assert {row["speaker"] for row in rows} == {"emovo/f1", "emovo/m1", "emovo/m2"}
    assert len({row["clip_id"] for row in rows}) == 5 and all(row["clip_id"].startswith("emovo_") for row in rows)
    bad = {**EMOVO_LIKE, "classes": {"rab": "angry"}}
    _, problems, _ = manifest_rows("emovo", bad, folder)
    assert len(problems) == 3 and "not in corpora.emovo.classes" in problems[0][1]


def test_fetch_copies_each_corpus_checked_and_a_mismatch_names_the_file(tmp_path):
    source = tmp_path / "tones"
    make_folder_corpus(source)
    spec = {"folder": str(source), "label": {"folder": True}, "speaker": {"pattern": "take_(?P<speaker>[0-9]+)"},
            "classes": {"angry": "angry", "happy": "happy", "neutral": "neutral", "sad": "sad", "bored": None}}
    copied = fetch_corpora({"tones": spec}, tmp_path / "data/corpora")
    assert copied["tones"]["files"] == 15 and copied["tones"]["verified"] == 15
    assert (tmp_path / "data/corpora/tones/sad/take_0.wav").read_bytes() == (source / "sad/take_0.wav").read_bytes()
    (source / "sad/take_1.wav").write_bytes(b"changed")
    with pytest.raises(BadCorpusSpec, match="take_1.wav: SHA-256"):
        fetch_corpora({"tones": spec}, tmp_path / "other")
    assert not (tmp_path / "other").exists()  # nothing half-written
    with pytest.raises(BadCorpusSpec, match=r"corpora.gone.folder: '/no/such/folder'"):
        fetch_corpora({"gone": {**spec, "folder": "/no/such/folder"}}, tmp_path / "other")


def test_the_manifest_holds_every_corpus_and_keeps_ravdess_rows(tmp_path):
    make_corpus(tmp_path / "raw", actors=(1, 2), song_actors=())
    emovo_like(tmp_path / "corpora" / "emovo")
    alone, _ = build_manifest(tmp_path / "raw", progress=False)
    both, skipped = build_manifest(tmp_path / "raw", progress=False, corpora={"emovo": EMOVO_LIKE},
                                   corpora_dir=tmp_path / "corpora")
    assert skipped.empty and both["corpus"].value_counts().to_dict() == {"ravdess": len(alone), "emovo": 5}
    pd.testing.assert_frame_equal(both[both["corpus"] == "ravdess"].reset_index(drop=True), alone)
    assert set(alone["speaker"]) == {"ravdess/01", "ravdess/02"}
    other = both[both["corpus"] == "emovo"]
    assert other["actor"].isna().all() and (tmp_path / "raw" / other["path"].iloc[0]).exists()
    with pytest.raises(ValueError, match="corpus 'gone' was not copied"):
        build_manifest(tmp_path / "raw", progress=False, corpora={"gone": EMOVO_LIKE}, corpora_dir=tmp_path / "corpora")


def test_sums_listed_by_a_corpus_are_what_fetch_checks(tmp_path):
    folder = emovo_like(tmp_path / "emovo")
    files = sorted(folder.rglob("*.wav"))
    (folder / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  "
                                               f"{p.relative_to(folder).as_posix()}\n" for p in files))
    copied = fetch_corpora({"emovo": {**EMOVO_LIKE, "folder": str(folder)}}, tmp_path / "copy")
    assert copied["emovo"]["verified"] == 5 and (tmp_path / "copy/emovo/SHA256SUMS").exists()
