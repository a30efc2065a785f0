"""params.yaml parsed strictly (src/ser/config.py): the repo's own file, and every kind of slip named by its key."""

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from ser.archs import check_archs
from ser.config import Arch, Params, ParamsError, TrainRecipe, as_plain, load_params

ROOT = Path(__file__).resolve().parents[1]


def repo_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def load_checked(path: Path) -> Params:
    """What the features and train stages do: the types, then every arch's options against its classes."""
    params = load_params(path)
    check_archs(params, source=str(path))
    return params


def write(tmp_path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def variant(tmp_path, key: str, value=..., remove: bool = False) -> Path:
    """The repo's params with the dotted `key` set to `value` (or removed), written to tmp_path."""
    params = repo_params()
    *parents, last = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    if remove:
        del node[last]
    else:
        node[last] = copy.deepcopy(value)
    return write(tmp_path, params)


def test_the_repos_params_parse_with_every_arch(tmp_path):
    raw = repo_params()
    params = load_params(write(tmp_path, raw))
    assert isinstance(params, Params)
    assert set(params.archs) == set(raw["archs"]) and len(params.archs) == 5
    for name, arch in params.archs.items():
        assert isinstance(arch, Arch) and isinstance(arch.train, TrainRecipe)
        assert arch.features == raw["archs"][name]["features"] and arch.model == raw["archs"][name]["model"]
    assert params.arch == (raw["model"]["arch"], params.archs[raw["model"]["arch"]])
    # Values as written, and the recipe defaults where an arch omits a key (cnn_gru_attn names no refit).
    assert params.split.protocol == raw["split"]["protocol"] and params.split.actor_kfold.folds[0] == [1, 11, 20, 21]
    assert params.archs["whisper_mlp"].train.refit is True and params.archs["cnn_gru_attn"].train.refit is False
    assert params.archs["deep_cnn"].train.class_weights == raw["archs"]["deep_cnn"]["train"]["class_weights"]
    assert params.corpora["emodb"].classes["L"] is None
    with pytest.raises(AttributeError):  # frozen
        params.split.repeats = 1
    # as_plain: what a JSON model card can hold, the sections as written plus the recipes' defaults.
    plain = json.loads(json.dumps(as_plain(params)))
    assert plain["split"] == raw["split"] and plain["corpora"] == raw["corpora"]
    assert plain["archs"]["deep_cnn"]["train"] == {**as_plain(TrainRecipe(True, 1, "adam", 1.0)),
                                                   **raw["archs"]["deep_cnn"]["train"]}


def test_the_repos_own_file_loads_and_its_archs_check():
    load_checked(ROOT / "params.yaml")


def test_a_misspelt_key_is_named_with_its_path(tmp_path):
    path = variant(tmp_path, "archs.whisper_mlp.train.lr_typo", 1.0e-3)
    with pytest.raises(ParamsError, match=r"params\.yaml: archs\.whisper_mlp\.train\.lr_typo: unknown key "
                                          r"\(known: augmented_copies, batch_size, "):
        load_params(path)


CHANNEL = {"reverb_probability": 0.5, "rt60_seconds": [0.2, 0.8], "direct_to_reverberant_db": [0, 12],
           "snr_db": [5, 30], "noise_color": [0, 2], "highpass_hz": [50, 300], "lowpass_hz": [3400, 8000],
           "band_gain_db": 6, "mu_law_probability": 0.2}


@pytest.mark.parametrize("key, value, message", [
    ("split.repeats", "five", r"split\.repeats: expected an integer, got 'five'"),
    ("split.repeats", True, r"split\.repeats: expected an integer, got True"),
    ("prepare.skip_bad_files", 1, r"prepare\.skip_bad_files: expected true or false, got 1"),
    ("split.protocol", "randm", r"split\.protocol: expected one of random, actor_holdout, actor_kfold, "
                                r"leave_one_corpus_out, got 'randm'"),
    ("archs.whisper_mlp.train.lr", "1e-4", r"archs\.whisper_mlp\.train\.lr: expected a number, got '1e-4'"),
    ("split.actor_kfold.folds", [[1, 2], [3, "x"]], r"split\.actor_kfold\.folds\[1\]\[1\]: expected an integer"),
    ("train.device", "gpu", r"train\.device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    ("split.test_fraction", 1.0, r"split\.test_fraction: expected 0 < x < 1"),
    ("cores", -1, r"cores: expected 0 \(every core\) or more"),
    ("augment.channel", {**CHANNEL, "snr_db": [30, 5]},
     r"augment\.channel\.snr_db: expected \[low, high\] with low <= high, got \[30\.0, 5\.0\]"),
    ("augment.channel", {**CHANNEL, "mu_law_probability": 2},
     r"augment\.channel\.mu_law_probability: expected a probability in \[0, 1\], got 2"),
    ("augment.channel", {k: v for k, v in CHANNEL.items() if k != "lowpass_hz"},
     r"augment\.channel\.lowpass_hz: missing"),
])
def test_a_wrong_value_is_named_with_its_key(tmp_path, key, value, message):
    with pytest.raises(ParamsError, match=message):
        load_params(variant(tmp_path, key, value))


def test_an_int_is_taken_for_a_float(tmp_path):
    params = load_params(variant(tmp_path, "archs.deep_cnn.train.lr", 1))
    assert params.archs["deep_cnn"].train.lr == 1.0 and isinstance(params.archs["deep_cnn"].train.lr, float)


@pytest.mark.parametrize("key", ["split.validation_by", "archs.cnn_gru_attn.train.augmented_copies", "cores"])
def test_a_missing_required_key_is_named(tmp_path, key):
    with pytest.raises(ParamsError, match=rf"params\.yaml: {re.escape(key)}: missing"):
        load_params(variant(tmp_path, key, remove=True))


@pytest.mark.parametrize("key, message", [
    ("archs.deep_cnn.model.dense_dropot", r"archs\.deep_cnn\.model\.dense_dropot: unknown option of DeepCNN"),
    ("archs.deep_cnn.features.n_melz", r"archs\.deep_cnn\.features\.n_melz: unknown option of MFCCLogMel"),
])
def test_an_unknown_model_or_feature_option_is_named(tmp_path, key, message):
    path = variant(tmp_path, key, 3)
    load_params(path)  # the types are right: only the stages that build an arch know its options
    with pytest.raises(ParamsError, match=message):
        load_checked(path)


def test_an_unknown_recipe_or_arch_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"archs\.deep_cnn\.features\.recipe: expected one of .*got 'mfc'"):
        load_checked(variant(tmp_path, "archs.deep_cnn.features.recipe", "mfc"))
    with pytest.raises(ParamsError, match=r"archs\.deep_cnn\.features\.recipe: missing"):
        load_checked(variant(tmp_path, "archs.deep_cnn.features.recipe", remove=True))
    with pytest.raises(ParamsError, match=r"archs\.deep_cnn2: not a registered arch"):
        load_checked(variant(tmp_path, "archs.deep_cnn2", repo_params()["archs"]["deep_cnn"]))


def test_model_arch_must_have_a_section(tmp_path):
    with pytest.raises(ParamsError, match=r"model\.arch: 'whisper_mpl' has no section under archs"):
        load_params(variant(tmp_path, "model.arch", "whisper_mpl"))


def test_cross_corpus_must_name_described_corpora(tmp_path):
    with pytest.raises(ParamsError, match=r"cross_corpus\.corpora: savee not described under corpora"):
        load_params(variant(tmp_path, "cross_corpus.corpora", ["emodb", "savee"]))
    # RAVDESS needs no description where a protocol may test on it, and only there.
    load_params(variant(tmp_path, "split.leave_one_corpus_out.corpora", ["ravdess", "emodb"]))
    with pytest.raises(ParamsError, match=r"split\.also_train_on: ravdess not described"):
        load_params(variant(tmp_path, "split.also_train_on", ["ravdess"]))


def test_a_corpus_description_is_checked_by_ser_corpora(tmp_path):
    with pytest.raises(ParamsError, match=r"corpora\.emodb\.classes: \['furious'\] are not RAVDESS emotions"):
        load_params(variant(tmp_path, "corpora.emodb.classes", {"W": "furious"}))
    with pytest.raises(ParamsError, match=r"corpora\.emodb\.speaker: missing"):
        load_params(variant(tmp_path, "corpora.emodb.speaker", remove=True))


def test_class_weights_need_one_number_per_emotion(tmp_path):
    with pytest.raises(ParamsError, match=r"archs\.deep_cnn\.train\.class_weights: expected 8 numbers, one per "
                                          r"emotion \(neutral, .*got 7"):
        load_params(variant(tmp_path, "archs.deep_cnn.train.class_weights", [1.0] * 7))
    with pytest.raises(ParamsError, match=r"archs\.deep_cnn\.train\.class_weights: expected one of none, balanced "
                                          r"or a list, got 'bal'"):
        load_params(variant(tmp_path, "archs.deep_cnn.train.class_weights", "bal"))


def test_a_file_that_is_not_a_mapping_is_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("split: [unclosed\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: not valid YAML"):
        load_params(path)
    path.write_text("- a list\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: expected a mapping of sections"):
        load_params(path)


def test_a_corpus_that_split_uses_must_be_in_the_manifest(tmp_path):
    params = repo_params()
    params["prepare"]["corpora"] = ["emodb"]
    params["split"]["protocol"] = "leave_one_corpus_out"
    with pytest.raises(ParamsError, match=r"prepare\.corpora: lacks emovo, turev, which split uses"):
        load_params(write(tmp_path, params))
    params["split"]["protocol"] = "random"  # the in-corpus protocols use RAVDESS alone
    load_params(write(tmp_path, params))
    params["split"]["also_train_on"] = ["turev"]
    with pytest.raises(ParamsError, match=r"prepare\.corpora: lacks turev"):
        load_params(write(tmp_path, params))
