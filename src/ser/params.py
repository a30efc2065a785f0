"""Reading params.yaml the way the stages need it."""

from __future__ import annotations

from pathlib import Path

import yaml


def load_params(path: str | Path = "params.yaml") -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def selected_arch(params: dict) -> tuple[str, dict]:
    """(model.arch, its section under `archs`), with a clear error for an unknown name."""
    arch = params["model"]["arch"]
    if arch not in params.get("archs", {}):
        raise KeyError(f"model.arch is {arch!r} but params.yaml has no archs.{arch} section "
                       f"(known: {sorted(params.get('archs', {}))})")
    return arch, params["archs"][arch]
