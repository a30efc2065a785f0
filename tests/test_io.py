import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ser.io import atomic_path, read_json, write_json


def test_a_failed_write_keeps_the_old_output(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"kept": True})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert read_json(target) == {"kept": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def _killed_writer(target) -> None:
    """A process that starts writing `target` and is SIGKILLed mid-write, so no cleanup runs."""
    script = textwrap.dedent(f"""
        import os, signal
        from ser.io import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.mkdir()
            (tmp / "part").write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script])
    assert result.returncode == -signal.SIGKILL


def test_the_next_write_sweeps_what_a_killed_writer_left(tmp_path):
    target = tmp_path / "features"
    _killed_writer(target)
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and not target.exists()

    with atomic_path(target) as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    target = tmp_path / "features"
    live = tmp_path / f".features.{os.getppid()}.abc.tmp"  # our parent is alive for the whole test
    live.mkdir()
    with atomic_path(target) as tmp:
        tmp.mkdir()
    assert live.exists() and target.exists()


def test_another_outputs_temporary_is_not_taken_for_ours(tmp_path):
    other = tmp_path / ".model.2.999999.abcd1234.tmp"  # a temporary of "model.2", not of "model"
    other.mkdir()
    with atomic_path(tmp_path / "model") as tmp:
        tmp.mkdir()
    assert other.exists()
