"""Cross-corpus labels and scores (src/ser/cross_corpus.py) on tiny corpora in other naming schemes."""

import hashlib

import numpy as np
import pytest
import soundfile as sf

from ser.corpus import EMOTIONS
from ser.corpora import BadCorpusSpec, labelled_corpus, read_label, verify_checksums
from ser.cross_corpus import cross_corpus_scores

CREMA_CLASSES = {"ANG": "angry", "HAP": "happy", "SAD": "sad", "NEU": "neutral", "DIS": "disgust",
                 "FEA": "fearful", "BOR": None}


def write_clip(path, seconds=0.3, rate=16000, tone=220.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * tone * t)).astype(np.float32), rate)


@pytest.fixture
def crema_like(tmp_path):
    """Names as CREMA-D's: speaker_sentence_EMOTION_level, the label between the 2nd and 3rd underscore."""
    folder = tmp_path / "crema"
    for i, name in enumerate(["1001_DFA_ANG_XX", "1001_IEO_SAD_HI", "1002_DFA_NEU_XX", "1002_ITS_BOR_XX",
                              "1003_TIE_HAP_LO", "1003_DFA_BOR_XX"]):
        write_clip(folder / f"{name}.wav", tone=200.0 + 40 * i)
    return folder


def test_labels_are_read_by_position_separator_folder_or_pattern(tmp_path):
    assert read_label(tmp_path / "03a01Fa.flac", {"position": 5}) == "F"                 # EmoDB
    assert read_label(tmp_path / "1001_DFA_ANG_XX.wav", {"separator": "_", "field": 2}) == "ANG"  # CREMA-D
    assert read_label(tmp_path / "OAF_angry" / "OAF_back_angry.wav", {"folder": True}) == "OAF_angry"  # TESS
    assert read_label(tmp_path / "a03.wav", {"pattern": r"(?P<label>[a-z]+)\d+"}) == "a"      # SAVEE
    with pytest.raises(BadCorpusSpec, match="no character at position 9"):
        read_label(tmp_path / "short.wav", {"position": 9})
    with pytest.raises(BadCorpusSpec, match="give one of"):
        read_label(tmp_path / "x.wav", {"letter": 2})


def test_a_corpus_in_another_naming_scheme_maps_onto_ravdess_and_counts_what_it_leaves_out(crema_like):
    corpus = labelled_corpus(crema_like, {"separator": "_", "field": 2}, CREMA_CLASSES)
    assert [p.name for p in corpus.paths] == ["1001_DFA_ANG_XX.wav", "1001_IEO_SAD_HI.wav", "1002_DFA_NEU_XX.wav",
                                             "1003_TIE_HAP_LO.wav"]
    assert corpus.emotions == ["angry", "sad", "neutral", "happy"]
    assert corpus.left_out == {"BOR": 2}  # boredom has no RAVDESS counterpart


def test_bad_corpus_input_names_the_folder_or_the_file(crema_like, tmp_path):
    with pytest.raises(BadCorpusSpec, match="no such corpus folder"):
        labelled_corpus(tmp_path / "missing", {"position": 5}, {})
    classes = {k: v for k, v in CREMA_CLASSES.items() if k != "NEU"}
    with pytest.raises(BadCorpusSpec, match=r"1002_DFA_NEU_XX\.wav: label 'NEU' is not in the corpus's classes"):
        labelled_corpus(crema_like, {"separator": "_", "field": 2}, classes)
    with pytest.raises(BadCorpusSpec, match="not RAVDESS emotions"):
        labelled_corpus(crema_like, {"separator": "_", "field": 2}, {**CREMA_CLASSES, "ANG": "furious"})


def test_checksums_are_verified_and_a_changed_file_is_named(crema_like):
    assert verify_checksums(crema_like) == 0  # no listing: nothing to check
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(crema_like.glob("*.wav"))]
    (crema_like / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    assert verify_checksums(crema_like) == 6
    write_clip(crema_like / "1001_IEO_SAD_HI.wav", tone=999.0)
    with pytest.raises(BadCorpusSpec, match=r"1001_IEO_SAD_HI\.wav: SHA-256 .* differs"):
        verify_checksums(crema_like)


def probabilities(rows):
    """Rows of {emotion: probability}, the rest of each row spread evenly."""
    out = np.zeros((len(rows), len(EMOTIONS)))
    for i, row in enumerate(rows):
        rest = (1 - sum(row.values())) / (len(EMOTIONS) - len(row))
        out[i] = [row.get(name, rest) for name in EMOTIONS]
    return out


def test_shared_class_and_four_class_scores_match_a_hand_count():
    actual = ["angry", "angry", "sad", "neutral", "happy", "disgust"]
    scores = cross_corpus_scores(probabilities([
        {"angry": 0.9},                                  # angry: right in both
        {"fearful": 0.5, "angry": 0.3},                  # fearful, outside the corpus: wrong; 4-class: angry
        {"calm": 0.4, "sad": 0.35, "neutral": 0.05},     # calm = neutral: wrong in both (0.45 > 0.35)
        {"happy": 0.4, "calm": 0.3, "neutral": 0.2},     # happy: wrong; 4-class: neutral + calm 0.5 > 0.4
        {"happy": 0.6},                                  # right in both
        {"disgust": 0.7},                                # right; not one of the four classes
    ]), actual)
    shared = scores["shared"]
    assert shared["classes"] == ["neutral", "happy", "sad", "angry", "disgust"]
    assert shared["n"] == 6 and shared["accuracy"] == pytest.approx(3 / 6)
    # recall: neutral 0/1, happy 1/1, sad 0/1, angry 1/2, disgust 1/1
    assert shared["balanced_accuracy"] == pytest.approx((0 + 1 + 0 + 0.5 + 1) / 5)
    # F1: neutral 0, happy 2/3 (precision 1/2), sad 0, angry 2/3 (recall 1/2), disgust 1
    assert shared["macro_f1"] == pytest.approx((0 + 2 / 3 + 0 + 2 / 3 + 1) / 5)
    assert shared["confusion"][3] == [0, 0, 0, 1, 0, 1]  # angry: once angry, once outside the classes
    four = scores["four_class"]
    assert four["classes"] == ["angry", "happy", "neutral", "sad"] and four["n"] == 5
    assert four["accuracy"] == pytest.approx(4 / 5)
    assert four["balanced_accuracy"] == pytest.approx((1 + 1 + 1 + 0) / 4)  # angry 2/2, happy, neutral, sad 0/1
    assert four["recall"] == {"angry": 1.0, "happy": 1.0, "neutral": 1.0, "sad": 0.0}


def test_a_corpus_without_the_four_classes_scores_none_and_the_confusion_keeps_its_outside_column():
    scores = cross_corpus_scores(probabilities([{"disgust": 0.9}, {"fearful": 0.8}]), ["disgust", "fearful"])
    assert scores["four_class"] == {"classes": ["angry", "happy", "neutral", "sad"], "n": 0, "accuracy": None,
                                    "balanced_accuracy": None, "macro_f1": None, "recall": {}, "confusion": []}
    # No prediction fell outside the corpus's classes; the outside column is there all the same.
    assert scores["shared"]["classes"] == ["fearful", "disgust"]
    assert scores["shared"]["confusion"] == [[1, 0, 0], [0, 1, 0]]
