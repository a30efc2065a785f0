"""requirements.lock is what every install reads (README's two commands, .ci/run): it must hold each
direct pin of requirements.txt at the same version, and a hash for every package it names."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s\\;]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def lock_entries(text: str) -> dict[str, list[str]]:
    """Each locked package's lines (its pin and hash options), comments dropped."""
    entries, current = {}, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line)
        if match:
            current = canonical(match.group(1))
            entries[current] = [line]
        elif current is not None:
            entries[current].append(line)
    return entries


def same_release(direct: str, locked: str) -> bool:
    """torch==2.13.0 in requirements.txt is satisfied by the CPU build's 2.13.0+cpu (a local version label)."""
    return locked == direct or locked.split("+")[0] == direct


def test_every_direct_pin_is_locked_at_its_version():
    direct = pins((ROOT / "requirements.txt").read_text())
    locked = pins((ROOT / "requirements.lock").read_text())
    assert direct, "requirements.txt pins nothing?"
    stale = {name: (version, locked.get(name)) for name, version in direct.items()
             if name not in locked or not same_release(version, locked[name])}
    assert not stale, (f"requirements.lock is stale for {stale} (requirements.txt's pin, the lock's); regenerate "
                       "it as docs/install.md says")


def test_every_locked_package_carries_a_sha256():
    entries = lock_entries((ROOT / "requirements.lock").read_text())
    assert len(entries) > 50  # the whole environment, transitive packages included
    unhashed = [name for name, lines in entries.items() if not any("--hash=sha256:" in line for line in lines)]
    assert not unhashed, f"requirements.lock: no hash for {unhashed}"


def test_the_installs_require_hashes_from_the_lock():
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    for command in [*commands, ci]:
        assert "pip install --require-hashes -r requirements.lock" in command or \
            "pip install -q --require-hashes -r requirements.lock" in command
        assert "-r requirements.txt" not in command
