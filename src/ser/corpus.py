"""RAVDESS naming rules: the seven dash-separated fields of every file name.

`03-01-05-02-01-01-01.wav` = modality 03 (audio-only), vocal channel 01 (speech),
emotion 05 (angry), intensity 02 (strong), statement 01, repetition 01, actor 01.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
VOCAL_CHANNELS = {1: "speech", 2: "song"}
INTENSITIES = {1: "normal", 2: "strong"}
STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
AUDIO_ONLY_MODALITY = 3
ACTORS = range(1, 25)
AUDIO_EXTENSIONS = (".wav", ".flac")

# Top-level folders of the two Zenodo archives once extracted, and of a mirror.
ARCHIVE_FOLDERS = {"speech": "Audio_Speech_Actors_01-24", "song": "Audio_Song_Actors_01-24"}


class MalformedName(ValueError):
    """A file name that does not follow the RAVDESS naming convention."""


@dataclass(frozen=True)
class ClipLabel:
    clip_id: str          # the file name without extension; unique over speech and song
    vocal_channel: str    # speech | song
    emotion: str
    intensity: str
    statement: int
    repetition: int
    actor: int
    gender: str           # odd actors male, even female

    @property
    def emotion_index(self) -> int:
        return EMOTIONS.index(self.emotion)


def _field(fields: list[str], position: int, name: str, allowed, filename: str) -> int:
    raw = fields[position]
    if not (len(raw) == 2 and raw.isdigit()) or int(raw) not in allowed:
        raise MalformedName(f"{filename}: field {position + 1} ({name}) is {raw!r}, expected one of "
                            f"{sorted('%02d' % v for v in allowed)}")
    return int(raw)


def parse_name(path: str | Path) -> ClipLabel:
    """Decode a RAVDESS file name; raise MalformedName saying which field is wrong."""
    name = Path(path).name
    stem = Path(path).stem
    fields = stem.split("-")
    if len(fields) != 7:
        raise MalformedName(f"{name}: expected 7 dash-separated fields, found {len(fields)}")
    _field(fields, 0, "modality", {AUDIO_ONLY_MODALITY}, name)
    channel = _field(fields, 1, "vocal channel", VOCAL_CHANNELS, name)
    emotion = _field(fields, 2, "emotion", range(1, len(EMOTIONS) + 1), name)
    intensity = _field(fields, 3, "intensity", INTENSITIES, name)
    statement = _field(fields, 4, "statement", STATEMENTS, name)
    repetition = _field(fields, 5, "repetition", {1, 2}, name)
    actor = _field(fields, 6, "actor", ACTORS, name)
    if emotion == 1 and intensity == 2:
        raise MalformedName(f"{name}: neutral (emotion 01) has no strong intensity (02)")
    return ClipLabel(
        clip_id=stem,
        vocal_channel=VOCAL_CHANNELS[channel],
        emotion=EMOTIONS[emotion - 1],
        intensity=INTENSITIES[intensity],
        statement=statement,
        repetition=repetition,
        actor=actor,
        gender="male" if actor % 2 else "female",
    )


def make_name(vocal_channel: int, emotion: int, intensity: int, statement: int,
              repetition: int, actor: int, extension: str = ".wav") -> str:
    """The file name RAVDESS gives a clip (used by tests to build synthetic corpora)."""
    fields = (AUDIO_ONLY_MODALITY, vocal_channel, emotion, intensity, statement, repetition, actor)
    return "-".join(f"{f:02d}" for f in fields) + extension
