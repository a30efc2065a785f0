"""`ser export --onnx` and `ser predict --runtime onnx`: the exported graphs give PyTorch's outcomes, run
without PyTorch, and an export of weights other than the card's is refused."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from ser.audio import load_audio
from ser.card import ModelCard
from ser.checkpoint import save_checkpoint
from ser.cli import main
from ser.corpus import EMOTIONS, parse_name
from ser.features import make_recipe
from ser.models import build_model
from ser.onnx_export import ExportRefused, export_onnx
from ser.onnx_runtime import SIDECAR, OnnxPredictor
from ser.predict import NO_SPEECH, PREDICTED, Predictor
from ser.standardization import fit_standardization, standardization_tensors, standardize
from synthetic import make_corpus, tone, voice

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
RATE = 16000
TOLERANCE = 1e-4


def card_for(arch, model_options, recipe, standardization, **fields) -> ModelCard:
    feature_recipe = {**recipe.config(), "sample_rate": RATE, "shape": list(recipe.shape),
                      "standardize": recipe.standardize, **recipe.provenance()}
    return ModelCard(arch=arch, model_options=model_options, labels=list(EMOTIONS), input_shape=list(recipe.shape),
                     feature_recipe=feature_recipe, standardization=standardization, train_recipe={}, seed=0,
                     batch_size=0, device="cpu", epochs_run=0, best_epoch=0, best_validation_accuracy=0.0,
                     train_clips=0, train_rows=0, validation_clips=0, torch_version=torch.__version__,
                     split={"protocol": "random", "train_corpora": ["ravdess"]}, **fields)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The synthetic corpus's clips (tones, 8 emotions, 2 actors), and voices of several lengths."""
    root = tmp_path_factory.mktemp("corpus")
    clips = sorted(make_corpus(root / "ravdess", actors=(1, 2), song_actors=(), statements=(1,), seconds=1.5))
    voices = root / "voices"
    voices.mkdir()
    for name, seconds, rate, seed in (("short.wav", 1.1, 22050, 1), ("medium.flac", 4.0, 16000, 2),
                                      ("long.wav", 14.0, 44100, 3)):  # long: 4 windows of 6 s
        sf.write(voices / name, voice(seconds, rate, seed), rate)
    sf.write(voices / "tone.wav", tone(3, 1, RATE, 2.0), RATE)  # no speech for the detector
    sf.write(voices / "silent.wav", np.zeros(RATE, np.float32), RATE)
    return clips, voices


@pytest.fixture(scope="module")
def whisper_model(tmp_path_factory, corpus):
    """The default arch (whisper_mlp with its logistic member, on whisper_layers features as params.yaml sets
    them) as two runs with their own standardizations, the logistic member fitted on the synthetic corpus;
    the second run's member predicts alone (`logistic_share: 1`, the leave-one-corpus-out model's)."""
    clips, _ = corpus
    arch = PARAMS["archs"]["whisper_mlp"]
    recipe = make_recipe(arch["features"], RATE)
    features = np.stack([recipe.extract(load_audio(path, RATE)) for path in clips])
    labels = np.array([parse_name(path).emotion_index for path in clips])
    root = tmp_path_factory.mktemp("whisper_model")
    for run, seed, rows, share in (("repeat_1", 0, np.arange(len(clips)), 0.5),
                                   ("repeat_2", 1, np.arange(0, len(clips), 2), 1)):
        options = {**arch["model"], "hidden": [32, 16], "logistic_share": share}
        torch.manual_seed(seed)
        standardization = fit_standardization(features, rows, per="element")
        model = build_model("whisper_mlp", recipe.shape, len(EMOTIONS), **options).eval()
        inputs = standardize(torch.from_numpy(features[rows]), standardization_tensors(standardization, "cpu"))
        logistic = model.fit_logistic(inputs, labels[rows])
        save_checkpoint(root / run, model.state_dict(),
                        card_for("whisper_mlp", options, recipe, standardization, logistic=logistic))
    return root


@pytest.fixture(scope="module")
def exported(whisper_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "onnx"
    assert main(["export", "--onnx", str(out), "--model", str(whisper_model)]) == 0
    return out


def all_clips(corpus):
    clips, voices = corpus
    return [*clips, *sorted(voices.iterdir())]


def assert_same(ours, theirs):
    for a, b in zip(ours, theirs, strict=True):
        assert (a.path, a.status, a.emotion, a.windows, a.duration) == \
            (b.path, b.status, b.emotion, b.windows, b.duration)
        # Silero's ONNX and TorchScript models differ by ~1e-6 in a step's probability: the same stretches
        assert a.speech_seconds == (None if b.speech_seconds is None else pytest.approx(b.speech_seconds, abs=0.02))
        assert list(a.probabilities) == list(b.probabilities)
        assert np.abs(np.array(list(a.probabilities.values())) - np.array(list(b.probabilities.values()))).max(
            initial=0) <= TOLERANCE, a.path


def test_export_writes_graphs_and_a_sidecar_that_describe_the_run_ensemble(whisper_model, exported):
    sidecar = json.loads((exported / SIDECAR).read_text())
    assert sorted(p.name for p in exported.iterdir()) == ["ensemble.onnx", "features.onnx", SIDECAR, "silero_vad.onnx"]
    assert sidecar["labels"] == list(EMOTIONS) and sidecar["sample_rate"] == RATE and sidecar["window_seconds"] == 6.0
    assert sidecar["runs"] == ["repeat_1", "repeat_2"]
    torch_predictor = Predictor(whisper_model, device="cpu")
    assert sidecar["standardizations"] == [card.standardization for card in torch_predictor.cards]
    assert sidecar["standardizations"][0] != sidecar["standardizations"][1]  # each run keeps its own
    assert sidecar["weights_sha256"] == torch_predictor.card.feature_recipe["weights_sha256"]
    assert sidecar["cards"][1]["logistic"]["C"] == 0.01
    assert sidecar["check"]["max_abs_probability_difference"] <= TOLERANCE


def test_both_runtimes_give_the_same_outcomes_file_by_file_and_adapted_as_a_group(whisper_model, exported, corpus):
    clips, voices = corpus
    # The corpus's tones are no speech to the detector: their probabilities are compared with it off.
    torch_predictor = Predictor(whisper_model, device="cpu", detect_speech=False)
    onnx_predictor = OnnxPredictor(exported, detect_speech=False)
    alone_torch = [torch_predictor.predict_file(p) for p in clips]
    assert_same([onnx_predictor.predict_file(p) for p in clips], alone_torch)
    assert {r.status for r in alone_torch} == {PREDICTED}
    # The labels are the logistic member's fit, not a tie of near-uniform probabilities.
    assert len({r.emotion for r in alone_torch}) >= 4
    assert_same(onnx_predictor.predict_group(clips), torch_predictor.predict_group(clips))
    # Voices of several lengths, a tone and silence, with the speech check.
    torch_predictor.detect_speech = onnx_predictor.detect_speech = True
    paths = sorted(voices.iterdir())
    alone_torch = [torch_predictor.predict_file(p) for p in paths]
    assert_same([onnx_predictor.predict_file(p) for p in paths], alone_torch)
    assert [r.status for r in alone_torch] == [PREDICTED, PREDICTED, PREDICTED, NO_SPEECH, NO_SPEECH]
    assert [r.windows for r in alone_torch][:3] == [4, 1, 1] and alone_torch[0].speech_seconds > 5
    assert_same(onnx_predictor.predict_group(paths), torch_predictor.predict_group(paths))


def test_cli_gives_the_same_lines_json_and_csv_on_either_runtime(whisper_model, exported, corpus, tmp_path, capsys):
    clips, voices = corpus
    outputs = {}
    for runtime, model in (("torch", whisper_model), ("onnx", exported)):
        csv = tmp_path / f"{runtime}.csv"
        assert main(["predict", str(voices), str(clips[0]), "--model", str(model), "--runtime", runtime,
                     "--csv", str(csv), "--adapt", "folder"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert main(["predict", str(clips[3]), "--model", str(model), "--runtime", runtime, "--json"]) == 0
        outputs[runtime] = lines, json.loads(capsys.readouterr().out), pd.read_csv(csv)
    (torch_lines, torch_json, torch_csv), (onnx_lines, onnx_json, onnx_csv) = outputs["torch"], outputs["onnx"]
    assert [line.split("\t")[:2] for line in onnx_lines] == [line.split("\t")[:2] for line in torch_lines]
    assert list(onnx_csv.columns) == list(torch_csv.columns)
    pd.testing.assert_frame_equal(onnx_csv.drop(columns=list(EMOTIONS)), torch_csv.drop(columns=list(EMOTIONS)))
    assert np.nanmax(np.abs(onnx_csv[list(EMOTIONS)].to_numpy() - torch_csv[list(EMOTIONS)].to_numpy())) <= TOLERANCE
    assert onnx_json[0].keys() == torch_json[0].keys() and onnx_json[0]["emotion"] == torch_json[0]["emotion"]


BLOCKED = ("torch", "ctranslate2", "silero_vad")
# An interpreter where those are not installed: importing one raises ModuleNotFoundError, as it would there.
# (sys.modules[name] = None is not enough: scipy reads sys.modules["torch"] to tell torch's arrays apart.)
WITHOUT = f"""
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Absent())
from ser.cli import main
status = main(sys.argv[1:])
assert not [m for m in sys.modules if m.split(".")[0] in {BLOCKED!r}]
sys.exit(status)
"""


def test_onnx_runtime_runs_without_torch_ctranslate2_and_silero_vad(whisper_model, exported, corpus):
    paths = [str(p) for p in all_clips(corpus)[::4]]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", WITHOUT, "predict", *paths, "--model", str(exported),
                           "--runtime", "onnx", "--json", "--adapt", "all"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    ours = json.loads(done.stdout)
    theirs = Predictor(whisper_model, device="cpu").predict_group(paths)
    assert {r.status for r in theirs} == {PREDICTED, NO_SPEECH}  # the speech check ran, and found both
    for a, b in zip(ours, theirs, strict=True):
        assert (a["status"], a["emotion"], a["windows"]) == (b.status, b.emotion, b.windows)
        for label in b.probabilities:
            assert abs(a["probabilities"][label] - b.probabilities[label]) <= TOLERANCE
    # The block is real: the torch runtime fails there, and says what to install or use instead.
    done = subprocess.run([sys.executable, "-c", WITHOUT, "predict", paths[0], "--model", str(whisper_model)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "ser-pipeline[train]" in done.stderr and "--runtime onnx" in done.stderr


def test_export_refuses_weights_other_than_the_cards(whisper_model, tmp_path, capsys):
    changed = tmp_path / "model"
    shutil.copytree(whisper_model, changed)
    for weights in changed.glob("*/model.pt"):
        saved = torch.load(weights, weights_only=False)
        saved["card"]["feature_recipe"]["weights_sha256"] = "0" * 64
        torch.save(saved, weights)
    with pytest.raises(ExportRefused, match="0{64}.*now resolves to"):
        export_onnx(changed, tmp_path / "out")
    assert main(["export", "--onnx", str(tmp_path / "out"), "--model", str(changed)]) == 1
    assert "0" * 64 in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_changed_exported_file_is_named(exported, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    with open(copy / "ensemble.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match=r"ensemble\.onnx: SHA-256"):
        OnnxPredictor(copy)


def untrained_model_dir(root: Path, arch: str) -> Path:
    """An untrained model of `arch` on its own feature recipe (params.yaml's), with unit statistics."""
    options = PARAMS["archs"][arch]
    recipe = make_recipe(options["features"], RATE)
    torch.manual_seed(0)
    model = build_model(arch, recipe.shape, len(EMOTIONS), **options["model"])
    channels = recipe.shape[0] if recipe.standardize == "channel" else None
    statistic = [0.0] * channels if channels else np.zeros(recipe.shape).tolist()
    spread = [1.0 + 0.1 * i for i in range(channels)] if channels else np.ones(recipe.shape).tolist()
    save_checkpoint(root, model.state_dict(), card_for(arch, options["model"], recipe,
                                                       {"mean": statistic, "std": spread}))
    return root


@pytest.mark.parametrize("arch", ["cnn_gru_attn", "cnn_bilstm_attn", "cnn_bilstm_attn_logmel", "deep_cnn"])
def test_the_spectrogram_archs_export_too(arch, tmp_path, corpus):
    model = untrained_model_dir(tmp_path / "model", arch)
    export_onnx(model, tmp_path / "onnx")
    paths = [*corpus[0][:3], corpus[1] / "long.wav"]
    torch_predictor = Predictor(model, device="cpu", detect_speech=False)
    onnx_predictor = OnnxPredictor(tmp_path / "onnx", detect_speech=False)
    assert_same([onnx_predictor.predict_file(p) for p in paths], [torch_predictor.predict_file(p) for p in paths])
    assert_same(onnx_predictor.predict_group(paths), torch_predictor.predict_group(paths))


def test_whisper_embedding_is_refused_with_the_reason(tmp_path):
    recipe = make_recipe({"recipe": "whisper_embedding", "model": "Systran/faster-whisper-base"}, RATE)
    recipe._width = 512  # its shape, without running CTranslate2
    model = build_model("whisper_mlp", (512,), len(EMOTIONS))
    save_checkpoint(tmp_path / "model", model.state_dict(), card_for(
        "whisper_mlp", {}, recipe, {"mean": [0.0] * 512, "std": [1.0] * 512}))
    with pytest.raises(ExportRefused, match="whisper_embedding.*CTranslate2's int8 encoder"):
        export_onnx(tmp_path / "model", tmp_path / "onnx")



def test_pooling_over_the_clips_own_frames_is_refused_with_the_reason(tmp_path):
    """The exported graph pools over every frame it is given; a padded clip's own frames are not among its inputs."""
    options = {**PARAMS["archs"]["whisper_mlp"]["features"], "model": "Systran/faster-whisper-tiny.en",
               "pad_to_30s": True, "pool_frames": "clip"}
    recipe = make_recipe(options, RATE)
    model = build_model("whisper_mlp", recipe.shape, len(EMOTIONS))
    save_checkpoint(tmp_path / "model", model.state_dict(), card_for(
        "whisper_mlp", {}, recipe, {"mean": np.zeros(recipe.shape).tolist(), "std": np.ones(recipe.shape).tolist()}))
    with pytest.raises(ExportRefused, match="pool_frames: clip cannot be exported"):
        export_onnx(tmp_path / "model", tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_card_of_an_export_reads_its_sidecar(exported, capsys):
    assert main(["predict", "--card", str(exported), "--runtime", "onnx", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert [Path(path).name for path in cards] == ["repeat_1", "repeat_2"]
    assert {card["arch"] for card in cards.values()} == {"whisper_mlp"}
