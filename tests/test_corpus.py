import pytest

from ser.corpus import MalformedName, make_name, parse_name


def test_parses_all_seven_fields():
    label = parse_name("data/raw/Audio_Speech_Actors_01-24/Actor_12/03-01-05-02-01-02-12.wav")
    assert label.clip_id == "03-01-05-02-01-02-12"
    assert (label.vocal_channel, label.emotion, label.intensity) == ("speech", "angry", "strong")
    assert (label.statement, label.repetition, label.actor, label.gender) == (1, 2, 12, "female")
    assert label.emotion_index == 4


def test_song_and_male_actor():
    label = parse_name("03-02-08-01-02-01-07.flac")
    assert (label.vocal_channel, label.emotion, label.actor, label.gender) == ("song", "surprised", 7, "male")


def test_make_name_round_trips():
    name = make_name(2, 3, 2, 1, 2, 24, ".flac")
    assert name == "03-02-03-02-01-02-24.flac"
    assert parse_name(name).actor == 24


@pytest.mark.parametrize("name, says", [
    ("03-01-05-02-01-01.wav", "expected 7"),
    ("03-01-05-02-01-01-01-01.wav", "expected 7"),
    ("01-01-05-02-01-01-01.wav", "modality"),
    ("03-03-05-02-01-01-01.wav", "vocal channel"),
    ("03-01-09-02-01-01-01.wav", "emotion"),
    ("03-01-05-03-01-01-01.wav", "intensity"),
    ("03-01-05-02-03-01-01.wav", "statement"),
    ("03-01-05-02-01-03-01.wav", "repetition"),
    ("03-01-05-02-01-01-25.wav", "actor"),
    ("03-01-05-02-01-01-1.wav", "actor"),
    ("03-01-01-02-01-01-01.wav", "neutral"),
    ("notes.wav", "expected 7"),
])
def test_malformed_names_say_what_is_wrong(name, says):
    with pytest.raises(MalformedName) as error:
        parse_name(name)
    assert name in str(error.value) and says in str(error.value)
