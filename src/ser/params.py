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


def set_param(params: dict, assignment: str) -> dict:
    """Apply one `section.key=value` override (the syntax of `dvc exp run -S`; the value is read as YAML)."""
    name, sep, value = assignment.partition("=")
    if not sep or not name:
        raise ValueError(f"{assignment!r}: expected section.key=value")
    *parents, key = name.split(".")
    node = params
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise KeyError(f"{name}: params.yaml has no section {part!r} there")
        node = node[part]
    node[key] = yaml.safe_load(value)
    return params
