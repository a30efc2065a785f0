"""The prepare stage's logic: one manifest row per clip, every bad file named."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .audio import BadAudio, audio_info
from .corpora import RAVDESS, manifest_rows
from .corpus import AUDIO_EXTENSIONS, MalformedName, parse_name

# `corpus` and `speaker` hold for every corpus (a speaker is "<corpus>/<id>", unique across corpora);
# RAVDESS's own fields (intensity, statement, repetition, actor, gender) are empty for the others.
MANIFEST_COLUMNS = ["clip_id", "path", "corpus", "speaker", "vocal_channel", "emotion", "intensity", "statement",
                    "repetition", "actor", "gender", "duration", "sample_rate", "channels"]
NULLABLE_INTEGERS = ("statement", "repetition", "actor")


class BadCorpus(ValueError):
    """Files in the corpus that cannot be used; the message lists each one and why."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        shown = "\n".join(f"  {path}: {why}" for path, why in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} unusable file(s) in the corpus:\n{shown}{more}\n"
                         "Fix or remove them, or set prepare.skip_bad_files: true to leave them out.")


def build_manifest(raw_dir: str | Path, skip_bad_files: bool = False, progress: bool = True,
                   corpora: dict | None = None, corpora_dir: str | Path = "data/corpora"
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scan `raw_dir` for RAVDESS audio files, and `corpora_dir/<name>` for each corpus that `corpora`
    describes (see ser.corpora); return (manifest, skipped).

    `path` is relative to `raw_dir` (another corpus's files: `../<corpora_dir's name>/<name>/...`, so that
    `raw_dir / path` finds every file). Without `skip_bad_files`, any malformed name,
    unreadable, truncated or empty file, or duplicate clip raises BadCorpus listing all of them.
    Every file is decoded whole: a compressed file cut short keeps a header that promises all of
    its frames, and only the decoder finds out.
    """
    raw_dir = Path(raw_dir)
    files = sorted(p for p in raw_dir.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise BadCorpus([(str(raw_dir), f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")])
    rows, problems, seen = [], [], {}
    for path in tqdm(files, desc="prepare", unit="file", disable=not progress):
        relative = path.relative_to(raw_dir).as_posix()
        try:
            label = parse_name(path)
            info = audio_info(path, decode=True)
        except (MalformedName, BadAudio) as error:
            problems.append((relative, str(error).split(": ", 1)[-1]))
            continue
        if label.clip_id in seen:
            problems.append((relative, f"same clip as {seen[label.clip_id]}"))
            continue
        seen[label.clip_id] = relative
        rows.append({**label.__dict__, "path": relative, "corpus": RAVDESS,
                     "speaker": f"{RAVDESS}/{label.actor:02d}", **info})
    for name, spec in (corpora or {}).items():
        folder = Path(corpora_dir) / name
        if not folder.is_dir():
            problems.append((str(folder), f"corpus {name!r} was not copied here (run the download stage)"))
            continue
        described, unlabelled, _ = manifest_rows(name, spec, folder)
        problems += [(str(path), why) for path, why in unlabelled]
        for row in tqdm(described, desc=f"prepare {name}", unit="file", disable=not progress):
            path = folder / row["relative"]
            try:
                info = audio_info(path, decode=True)
            except BadAudio as error:
                problems.append((str(path), str(error).split(": ", 1)[-1]))
                continue
            rows.append({"clip_id": row["clip_id"], "path": os.path.relpath(path, raw_dir), "corpus": name,
                         "speaker": row["speaker"], "vocal_channel": "speech", "emotion": row["emotion"], **info})
    if problems and not skip_bad_files:
        raise BadCorpus(problems)
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values("clip_id", ignore_index=True)
    manifest = manifest.astype({column: "Int64" for column in NULLABLE_INTEGERS})
    skipped = pd.DataFrame(problems, columns=["path", "problem"])
    return manifest, skipped
