"""The model card says what trained the model (ser.rows.trained_on, the train stage's params and commit), an
older card still loads, and `ser predict --card` prints it without any audio."""

import dataclasses
import importlib.util
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from ser.card import ModelCard
from ser.checkpoint import load_checkpoint, read_card, save_checkpoint
from ser.cli import main
from ser.config import load_params
from ser.corpus import EMOTIONS
from ser.rows import trained_on
from ser.split import assign_partitions
from ser.training import train_model
from test_training import FEATURES, arch, toy_data

ROOT = Path(__file__).resolve().parents[1]
NEW_FIELDS = ("trained_on", "params", "commit")


def stage_train():
    """stages/train.py as a module (the stages package is not installed, and `pytest` alone does not put the
    repository on the path)."""
    spec = importlib.util.spec_from_file_location("stage_train", ROOT / "stages" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def split_by_actor():
    """toy_data's 6 actors: actor 6 tested, a share of the other five validating, the rest training."""
    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "actor_holdout", test_actors=[6], validation_fraction=0.2, seed=1)
    return index, features, split


def trained(refit: bool):
    index, features, split = split_by_actor()
    state, card = train_model("whisper_mlp", arch(refit=refit, epochs=2), features, index, split, seed=3,
                              batch_size=16, device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    return state, card, split


@pytest.mark.parametrize("refit", [False, True])
def test_the_card_lists_the_kept_models_own_speakers_and_clips(refit):
    """With refit the validation speakers trained the kept model and the card names them; without, they did
    not and it does not. Never a tested speaker."""
    _, card, split = trained(refit)
    kept = split[split["partition"].isin(["train", "validation"] if refit else ["train"])]
    validating = {f"ravdess/{int(a):02d}" for a in split.loc[split["partition"] == "validation", "actor"]}
    assert card.trained_on["speakers"] == sorted({f"ravdess/{int(a):02d}" for a in kept["actor"]})
    assert validating and (validating <= set(card.trained_on["speakers"])) == refit
    assert not validating & set(card.trained_on["speakers"]) or refit
    assert "ravdess/06" not in card.trained_on["speakers"]  # the tested actor
    assert card.trained_on["clips_per_emotion"] == {e: int((kept["emotion"] == e).sum()) for e in EMOTIONS}
    assert card.trained_on["clips"] == len(kept) == (card.refit["train_clips"] if refit else card.train_clips)
    assert card.trained_on["augmented_copies"] == 2 * len(kept)  # toy_data: 2 copies of each clip, trained on
    assert card.trained_on["corpora"] == ["ravdess"]


def test_speakers_come_from_the_speaker_column_where_the_split_has_one():
    """A split with other corpora (split.also_train_on, leave_one_corpus_out) names every clip's speaker; its
    test clips and copies not kept stay off the card."""
    assignments = pd.DataFrame({
        "clip_id": ["r1", "r2", "t1", "t2", "x1"],
        "actor": [1, 2, None, None, 3],
        "corpus": ["ravdess", "ravdess", "tones", "tones", "ravdess"],
        "speaker": ["ravdess/01", "ravdess/02", "tones/7", "tones/8", "ravdess/03"],
        "emotion": ["happy", "sad", "happy", "angry", "sad"],
        "partition": ["train", "train", "train", "validation", "test"]})
    index = pd.DataFrame({"clip_id": ["r1", "r1", "r2", "t1", "t2", "x1"], "copy": [0, 1, 0, 0, 0, 0]})
    record = trained_on(index, assignments, [0, 1, 2, 3])
    assert record["corpora"] == ["ravdess", "tones"]
    assert record["speakers"] == ["ravdess/01", "ravdess/02", "tones/7"]
    assert record["clips"] == 3 and record["augmented_copies"] == 1
    assert {e: n for e, n in record["clips_per_emotion"].items() if n} == {"happy": 2, "sad": 1}


def test_an_older_card_still_loads_and_an_unknown_key_is_still_refused(model_dir):
    _, card, _ = trained(refit=False)
    old = {key: value for key, value in card.to_json().items() if key not in NEW_FIELDS}
    loaded = ModelCard.from_json(old)
    assert all(getattr(loaded, key) is None for key in NEW_FIELDS)
    _, fixture_card = load_checkpoint(model_dir)  # written without them
    assert fixture_card.trained_on is None and fixture_card.commit is None
    with pytest.raises(ValueError, match="unknown card keys"):
        ModelCard.from_json({**card.to_json(), "trained_by": "someone"})


def test_params_record_nests_what_shaped_the_model_as_params_yaml_does():
    params = load_params(ROOT / "params.yaml")
    record = stage_train().params_record(params, copies_used=False)
    arch_name = params.model.arch
    assert record["model"] == {"arch": arch_name} and set(record["archs"]) == {arch_name}
    assert record["archs"][arch_name]["train"]["epochs"] == params.archs[arch_name].train.epochs
    assert record["split"]["protocol"] == params.split.protocol and "augment" not in record
    assert record["train"] == {"seed": params.train.seed, "batch_size": params.train.batch_size}
    assert stage_train().params_record(params, copies_used=True)["augment"]["copies"] == params.augment.copies
    json.dumps(record)  # plain JSON


def test_code_record_names_the_commit_and_only_code_changes(tmp_path, monkeypatch):
    from ser.evaluation import code_record
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above tmp_path
    assert code_record() is None
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "code"]):
        subprocess.run(git + command, check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "params.yaml").write_text("a: 2\n")  # what `dvc exp run -S` does: not the code
    (tmp_path / "dvc.lock").write_text("")
    assert code_record() == {"id": head, "uncommitted_code": False}
    (tmp_path / "src" / "m.py").write_text("x = 2\n")
    assert code_record() == {"id": head, "uncommitted_code": True}


def test_predict_card_prints_what_trained_each_run_without_audio(model_dir, tmp_path, capsys):
    state, card, _ = trained(refit=True)
    card = dataclasses.replace(card, split={"protocol": "actor_holdout", "repeat": 1, "fold": 1},
                               commit={"id": "abc1234", "uncommitted_code": False})
    save_checkpoint(tmp_path / "models" / "repeat_1", state, card)
    assert main(["predict", "--card", str(tmp_path / "models")]) == 0
    lines = capsys.readouterr().out.splitlines()
    speakers = card.trained_on["speakers"]
    assert lines[0] == str(tmp_path / "models" / "repeat_1")
    assert "  arch: whisper_mlp" in lines and "  protocol: actor_holdout (repeat 1, fold 1)" in lines
    assert "  corpora: ravdess" in lines and "  commit: abc1234" in lines
    assert f"  speakers ({len(speakers)}): {', '.join(speakers)}" in lines
    assert any(line.startswith(f"  clips: {card.trained_on['clips']} (neutral ") for line in lines)

    assert main(["predict", "--json", "--card", str(tmp_path / "models" / "repeat_1")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {str(tmp_path / "models" / "repeat_1"): read_card(tmp_path / "models" / "repeat_1")}
    assert list(printed.values())[0]["trained_on"] == card.trained_on

    # --model's directory by default; a card written before: said so, not guessed.
    assert main(["predict", "--card", "--model", str(model_dir)]) == 0
    assert "  speakers: not recorded (an older card)" in capsys.readouterr().out.splitlines()
    with pytest.raises(SystemExit) as usage:
        main(["predict", "--card", str(model_dir), "a.wav"])
    assert usage.value.code == 2
    assert main(["predict", "--card", str(tmp_path / "nothing")]) == 1

