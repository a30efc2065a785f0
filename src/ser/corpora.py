"""Corpora besides RAVDESS, described by params alone: where they are, and how a file's label and speaker are read.

A description (one entry of params.yaml's `corpora`) has a `folder`, a `label` rule, a `speaker` rule and
a `classes` map onto RAVDESS's emotions (null: a label with no counterpart, whose files are left out and
counted). Rules read a file's path in any of the ways SER corpora name things:

- `{"position": 5}`: the character at a 0-based position of the file stem (EmoDB: `03a01Fa` -> `F`);
- `{"separator": "_", "field": 2}`: a token between separators (CREMA-D: `1001_DFA_ANG_XX` -> `ANG`);
- `{"folder": true}`: the name of the folder that holds the file (TESS: `OAF_angry/...`);
- `{"pattern": "(?P<label>[a-z]+)\\d+"}`: a regular expression's named group (`label`, else `speaker`, else
  the first), for anything else: EmoDB's speaker is `{"pattern": "^(?P<speaker>[0-9]{2})"}`.

The download stage copies each described corpus into `data/corpora/<name>/` after checking it against its
SHA256SUMS, so every later stage reads files inside the workspace (a queued experiment runs in a copy of
it, where a relative folder such as `../shared/emodb` would point elsewhere). `manifest_rows` gives the
prepare stage one row per labelled file, with its `corpus` and `speaker`.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .corpus import AUDIO_EXTENSIONS, EMOTIONS
from .io import atomic_path, sha256_file

RAVDESS = "ravdess"
DESCRIPTION_KEYS = {"folder", "label", "classes", "speaker"}
RULE_KEYS = ({"position"}, {"separator", "field"}, {"folder"}, {"pattern"})
# What `ser predict` and the corpus scans read (libsndfile's formats; mp3 since libsndfile 1.1).
READABLE_EXTENSIONS = tuple(sorted({*AUDIO_EXTENSIONS, ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif"}))


class BadCorpusSpec(ValueError):
    """A corpus description, folder or file that cannot be used; the message names which."""


@dataclass(frozen=True)
class LabelledCorpus:
    paths: list[Path]          # the files kept, sorted
    emotions: list[str]        # each one's RAVDESS emotion
    left_out: dict[str, int]   # label -> files left out for having no RAVDESS counterpart


def audio_files(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in READABLE_EXTENSIONS)


def check_description(name: str, spec: dict, *, needs_speaker: bool = False) -> None:
    """A clear error naming the corpus and the key for a description that cannot be read."""
    where = f"corpora.{name}"
    if not isinstance(spec, dict):
        raise BadCorpusSpec(f"{where}: expected a mapping with {sorted(DESCRIPTION_KEYS)}, got {spec!r}")
    unknown = set(spec) - DESCRIPTION_KEYS
    if unknown:
        raise BadCorpusSpec(f"{where}: unknown key(s) {sorted(unknown)}; a corpus has {sorted(DESCRIPTION_KEYS)}")
    required = {"folder", "label", "classes"} | ({"speaker"} if needs_speaker else set())
    missing = required - set(spec)
    if missing:
        raise BadCorpusSpec(f"{where}: missing {sorted(missing)}")
    for key in ("label", "speaker"):
        if key in spec:
            check_rule(spec[key], f"{where}.{key}")
    if not isinstance(spec["classes"], dict) or not spec["classes"]:
        raise BadCorpusSpec(f"{where}.classes: expected a map of the corpus's labels onto RAVDESS emotions")
    unknown_targets = {t for t in spec["classes"].values() if t is not None and t not in EMOTIONS}
    if unknown_targets:
        raise BadCorpusSpec(f"{where}.classes: {sorted(unknown_targets)} are not RAVDESS emotions "
                            f"({', '.join(EMOTIONS)})")


def check_rule(rule, where: str) -> None:
    if not isinstance(rule, dict) or not any(set(rule) >= keys for keys in RULE_KEYS):
        raise BadCorpusSpec(f"{where}: {rule!r}; give one of position, separator + field, folder or pattern")
    if "pattern" in rule:
        try:
            compiled = re.compile(rule["pattern"])
        except re.error as error:
            raise BadCorpusSpec(f"{where}: pattern {rule['pattern']!r} is not a regular expression ({error})") from None
        if not compiled.groupindex:
            raise BadCorpusSpec(f"{where}: pattern {rule['pattern']!r} needs a named group, e.g. (?P<label>...)")


def read_label(path: Path, rule: dict) -> str:
    """What `rule` reads of one file's path (see the module docstring): its label, or its speaker."""
    stem = path.stem
    if "position" in rule:
        position = int(rule["position"])
        if position >= len(stem):
            raise BadCorpusSpec(f"{path}: name {stem!r} has no character at position {position}")
        return stem[position]
    if "separator" in rule:
        fields = stem.split(rule["separator"])
        index = int(rule["field"])
        if index >= len(fields):
            raise BadCorpusSpec(f"{path}: name {stem!r} has {len(fields)} fields split by "
                                f"{rule['separator']!r}; the label is field {index}")
        return fields[index]
    if rule.get("folder"):
        return path.parent.name
    if "pattern" in rule:
        match = re.search(rule["pattern"], stem)
        if not match or not match.groupdict():
            raise BadCorpusSpec(f"{path}: name {stem!r} does not match {rule['pattern']!r} "
                                f"(with a named group, e.g. label)")
        groups = match.groupdict()
        return groups.get("label", groups.get("speaker", next(iter(groups.values()))))
    raise BadCorpusSpec(f"label rule {rule!r}: give one of position, separator + field, folder or pattern")


def verify_checksums(folder: Path, listing: str = "SHA256SUMS") -> int:
    """Check every file `folder/listing` names against its SHA-256 (lines `<hex>  <name>`); the count.
    A corpus without the listing is not checked (0)."""
    sums = folder / listing
    if not sums.exists():
        return 0
    checked = 0
    for number, line in enumerate(sums.read_text().splitlines(), 1):
        if not line.strip():
            continue
        expected, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        target = folder / name
        if not target.exists():
            raise BadCorpusSpec(f"{target}: listed in {sums} (line {number}) but missing")
        digest = sha256_file(target)
        if digest != expected.lower():
            raise BadCorpusSpec(f"{target}: SHA-256 {digest[:12]}… differs from {sums} ({expected[:12]}…)")
        checked += 1
    return checked


def labelled_corpus(folder: str | Path, label: dict, classes: dict) -> LabelledCorpus:
    """Every audio file under `folder` with its RAVDESS emotion, by the corpus's `label` rule and `classes` map."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadCorpusSpec(f"{folder}: no such corpus folder")
    unknown = {target for target in classes.values() if target is not None and target not in EMOTIONS}
    if unknown:
        raise BadCorpusSpec(f"{folder}: classes map onto {sorted(unknown)}, which are not RAVDESS emotions "
                            f"({', '.join(EMOTIONS)})")
    paths, emotions, left_out = [], [], Counter()
    for path in audio_files(folder):  # what `ser predict` reads
        code = read_label(path, label)
        if code not in classes:
            raise BadCorpusSpec(f"{path}: label {code!r} is not in the corpus's classes ({sorted(classes)})")
        if classes[code] is None:
            left_out[code] += 1
            continue
        paths.append(path)
        emotions.append(classes[code])
    if not paths:
        raise BadCorpusSpec(f"{folder}: no audio file with a label that maps onto RAVDESS's emotions")
    return LabelledCorpus(paths, emotions, dict(left_out))


def resolve_folder(folder: str | Path) -> Path:
    """A corpus folder as given in params: absolute, or relative to the directory the stage runs in."""
    path = Path(folder).expanduser()
    return path if path.is_absolute() else (Path.cwd() / path).resolve()


def fetch_corpora(corpora: dict, dest: str | Path) -> dict:
    """Copy every described corpus into `dest/<name>/` (audio and its SHA256SUMS), each checked first;
    one atomic folder, so a failure leaves the previous copy. What was copied, per corpus."""
    copied = {}
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        for name, spec in corpora.items():
            check_description(name, spec, needs_speaker=True)
            source = resolve_folder(spec["folder"])
            if not source.is_dir():
                raise BadCorpusSpec(f"corpora.{name}.folder: {spec['folder']!r} ({source}) is not a folder")
            verified = verify_checksums(source)
            files = audio_files(source)
            if not files:
                raise BadCorpusSpec(f"corpora.{name}.folder: {source} holds no audio files")
            for path in files:
                target = tmp / name / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            if (source / "SHA256SUMS").is_file():
                shutil.copyfile(source / "SHA256SUMS", tmp / name / "SHA256SUMS")
            copied[name] = {"location": str(spec["folder"]), "files": len(files), "verified": verified}
    return copied


def clip_id_of(corpus: str, relative: Path) -> str:
    """A corpus file's clip id: the corpus name and its path without extension, unique across corpora and
    sorting after every RAVDESS id (those begin with a digit)."""
    return f"{corpus}_" + relative.with_suffix("").as_posix().replace("/", "_")


def manifest_rows(name: str, spec: dict, folder: Path) -> tuple[list[dict], list[tuple[Path, str]], dict]:
    """(a manifest row per labelled file of the copied corpus in `folder`, files that could not be labelled as
    (path, why), labels left out for having no RAVDESS counterpart). Paths in rows are relative to `folder`."""
    check_description(name, spec, needs_speaker=True)
    rows, problems, left_out = [], [], Counter()
    for path in audio_files(folder):
        try:
            code = read_label(path, spec["label"])
            speaker = read_label(path, spec["speaker"])
        except BadCorpusSpec as error:
            problems.append((path, str(error).split(": ", 1)[-1]))
            continue
        if code not in spec["classes"]:
            problems.append((path, f"label {code!r} is not in corpora.{name}.classes ({sorted(spec['classes'])})"))
            continue
        if spec["classes"][code] is None:
            left_out[code] += 1
            continue
        relative = path.relative_to(folder)
        rows.append({"clip_id": clip_id_of(name, relative), "relative": relative.as_posix(),
                     "emotion": spec["classes"][code], "speaker": f"{name}/{speaker}"})
    return rows, problems, dict(left_out)
