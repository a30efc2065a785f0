"""Atomic file and directory writes: a failed stage never leaves half an output."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it into place only on success.

    Works for files and directories alike: the caller writes whatever it wants
    at the yielded path. On any exception the temporary is removed and the old
    `target` (if any) is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_orphaned_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
    tmp_target = tmp / (target.name + suffix)
    try:
        yield tmp_target
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp_target, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_orphaned_temporaries(target: str | os.PathLike) -> None:
    """Delete the temporaries of `target` left by writers that were killed (SIGKILL skips `finally`).

    A temporary's name carries its writer's pid, so one still being written by a
    live process is never touched.
    """
    target = Path(target)
    name = re.compile(rf"\.{re.escape(target.name)}\.(\d+)\.[^.]+\.tmp")  # as atomic_path names them
    for leftover in target.parent.glob(f".{target.name}.*.tmp"):
        writer = name.fullmatch(leftover.name)
        if writer and not _process_alive(int(writer.group(1))):
            shutil.rmtree(leftover, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        pass
    return True


def write_json(path: str | os.PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as handle:
        return json.load(handle)


def write_parquet(path: str | os.PathLike, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def sha256_file(path: str | os.PathLike) -> str:
    """A file's SHA-256, read in blocks (model weights and corpora run to hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(16 << 20):
            digest.update(block)
    return digest.hexdigest()
