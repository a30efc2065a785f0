"""params.yaml, parsed strictly into frozen dataclasses.

Why: the stages used to read params.yaml as plain dicts, so `dvc exp run -S archs.whisper_mlp.train.lr_typo=1e-3`
ran a whole experiment that silently ignored the misspelt key, and a recipe's defaults lived in two places
(params.yaml and the `.get(key, default)` calls of the training code). `load_params` refuses an unknown key,
a value of the wrong type, a missing key and a name that points nowhere (model.arch, a corpus, a feature
recipe or model option); every `ParamsError` names the dotted key path and the problem.

params.yaml gives the pipeline's values: every key of every section is required there. The few dataclass
defaults below are only for the keys an arch's `train` recipe may omit (not every seed names a scheduler,
a weight decay or early stopping); they are the values the training code has always used for them.
"""

from __future__ import annotations

import dataclasses
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from .corpora import RAVDESS, check_description
from .corpus import EMOTIONS


class ParamsError(ValueError):
    """A params.yaml that cannot be used as written; the message names the key path and the problem."""


Subset = Literal["all", "speech", "song"]


def key_path(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


def require(ok: bool, where: str, problem: str) -> None:
    if not ok:
        raise ParamsError(f"{where}: {problem}")


# ---------------------------------------------------------------------------------------------- the parser

_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}


def _describe(tp) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in args)
    if origin is Literal:
        return "one of " + ", ".join(str(arg) for arg in args)
    if origin is list:
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return _NAMES.get(tp, repr(tp))


def _shape(tp) -> type | None:
    """The YAML container a type is read from (list or dict), None for a scalar."""
    origin = get_origin(tp)
    if origin in (list, dict):
        return origin
    return dict if dataclasses.is_dataclass(tp) else None


def parse(cls, value, where: str):
    """`value` (as yaml.safe_load gives it) checked against the type `cls` and converted: nested dataclasses
    built, ints given for a float made floats. A ParamsError names `where` (a dotted key path) otherwise."""
    origin, args = get_origin(cls), get_args(cls)

    def wrong():
        hint = ""
        if cls is float and isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value):
            hint = " (YAML reads 1e-4 as a string: write 1.0e-4)"
        return ParamsError(f"{where}: expected {_describe(cls)}, got {value!r}{hint}")

    if cls is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for arm in args:
            try:
                return parse(arm, value, where)
            except ParamsError as error:
                errors.append((arm, error))
        # A list or mapping that failed inside the one arm of its shape: that arm's error says where inside.
        inside = [error for arm, error in errors if _shape(arm) is not None and isinstance(value, _shape(arm))]
        raise inside[0] if len(inside) == 1 else wrong()
    if origin is Literal:
        # type() too: YAML's true would otherwise match a Literal 1, and 1 a Literal 1.0
        if not any(value == arg and type(value) is type(arg) for arg in args):
            raise wrong()
        return value
    if origin is list:
        if not isinstance(value, list):
            raise wrong()
        return [parse(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong()
        for key in value:
            require(isinstance(key, str), key_path(where, key), "expected a string key")
        return {key: parse(args[1], item, key_path(where, key)) for key, item in value.items()}
    if dataclasses.is_dataclass(cls):
        return _parse_dataclass(cls, value, where)
    # bool is a subclass of int in Python; in params a true for a count, or a 1 for a switch, is a slip.
    if (cls is bool and isinstance(value, bool)) or (cls is str and isinstance(value, str)) or \
            (cls is type(None) and value is None):
        return value
    if cls is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if cls is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if cls in _NAMES:
        raise wrong()
    raise TypeError(f"parse: unsupported type {cls!r} at {where}")


def _parse_dataclass(cls, value, where: str):
    if not isinstance(value, dict):
        raise ParamsError(f"{where}: expected a mapping, got {value!r}")
    hints = get_type_hints(cls)
    known = {field.name: field for field in dataclasses.fields(cls)}
    for key in value:
        require(key in known, key_path(where, key), f"unknown key (known: {', '.join(sorted(known))})")
    options = {}
    for name, field in known.items():
        if name in value:
            options[name] = parse(hints[name], value[name], key_path(where, name))
        else:
            has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
            require(has_default, key_path(where, name), "missing")
    result = cls(**options)
    if hasattr(result, "check"):  # what types cannot say: ranges, and names that must point somewhere
        result.check(where)
    return result


# ---------------------------------------------------------------------------------------------- the sections

@dataclass(frozen=True)
class Download:
    source: str
    zenodo_url: str
    archives: dict[str, str]
    retries: int


@dataclass(frozen=True)
class Prepare:
    skip_bad_files: bool
    corpora: list[str]


@dataclass(frozen=True)
class Audio:
    sample_rate: int


@dataclass(frozen=True)
class ActorKfold:
    folds: list[list[int]] | int
    train_subset: Subset
    test_subset: Subset


@dataclass(frozen=True)
class LeaveOneCorpusOut:
    corpora: list[str]
    subset: Subset


@dataclass(frozen=True)
class Split:
    protocol: Literal["random", "actor_holdout", "actor_kfold", "leave_one_corpus_out"]
    subset: Subset
    test_fraction: float
    test_actors: list[int]
    actor_kfold: ActorKfold
    leave_one_corpus_out: LeaveOneCorpusOut
    also_train_on: list[str]
    validation_fraction: float
    validation_by: Literal["actor", "clip"]
    seed: int
    repeats: int

    def check(self, where: str) -> None:
        require(0 < self.test_fraction < 1, key_path(where, "test_fraction"),
                 f"expected 0 < x < 1, got {self.test_fraction}")
        require(0 <= self.validation_fraction < 1, key_path(where, "validation_fraction"),
                 f"expected 0 <= x < 1, got {self.validation_fraction}")
        require(self.repeats >= 1, key_path(where, "repeats"), f"expected at least 1, got {self.repeats}")


@dataclass(frozen=True)
class Channel:
    """Effects of a room, a microphone, a line and a codec that a corpus recorded elsewhere carries (issue 30,
    item 6); each [low, high] pair is a uniform draw per copy (log-uniform for frequencies)."""
    reverb_probability: float
    rt60_seconds: list[float]
    direct_to_reverberant_db: list[float]
    snr_db: list[float]
    noise_color: list[float]  # the noise's power spectrum ~ 1 / f^x: 0 white, 1 pink, 2 brown
    highpass_hz: list[float]
    lowpass_hz: list[float]
    band_gain_db: float  # six log-spaced bands each raised or lowered by up to this much
    mu_law_probability: float  # 8-bit mu-law, as a telephone line

    def check(self, where: str) -> None:
        for name in ("rt60_seconds", "direct_to_reverberant_db", "snr_db", "noise_color", "highpass_hz",
                     "lowpass_hz"):
            pair = getattr(self, name)
            require(len(pair) == 2 and pair[0] <= pair[1], key_path(where, name),
                    f"expected [low, high] with low <= high, got {pair}")
        for name in ("reverb_probability", "mu_law_probability"):
            require(0 <= getattr(self, name) <= 1, key_path(where, name),
                    f"expected a probability in [0, 1], got {getattr(self, name)}")
        require(self.rt60_seconds[0] > 0 and self.highpass_hz[0] > 0, where,
                "rt60_seconds and highpass_hz must be above 0")


@dataclass(frozen=True)
class Augment:
    copies: int
    time_stretch: list[float]
    pitch_shift_semitones: float
    noise_peak_fraction: float
    seed: int
    channel: Channel | None = None  # null: the seeds' three effects alone

    def check(self, where: str) -> None:
        require(len(self.time_stretch) == 2, key_path(where, "time_stretch"),
                 f"expected [low, high] rates, got {self.time_stretch}")


@dataclass(frozen=True)
class Adaptation:
    within: Literal["corpus", "speaker", "none"]
    prior_files: float
    single_view: bool = False  # the training clips also train as one recording is scored (single_recording_view)


@dataclass(frozen=True)
class Model:
    arch: str


@dataclass(frozen=True)
class Train:
    device: str
    seed: int
    batch_size: int

    def check(self, where: str) -> None:
        require(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, key_path(where, "device"),
                 f"expected auto, cpu, cuda or cuda:N, got {self.device!r}")


@dataclass(frozen=True)
class Corpus:
    folder: str
    label: dict[str, Any]
    # Required although ser.corpora's descriptions allow none: the download stage copies every described
    # corpus and checks it with needs_speaker=True.
    speaker: dict[str, Any]
    classes: dict[str, str | None]


@dataclass(frozen=True)
class CrossCorpus:
    standardize_on: Literal["corpus", "training"]
    skip_bad_files: bool
    corpora: list[str]


@dataclass(frozen=True)
class TrainRecipe:
    augmented_copies: bool  # also train on the augmented copies (the features stage then encodes them)
    epochs: int  # training epochs (at most, with early stopping)
    optimizer: Literal["adam", "adamw"]  # torch.optim.Adam or AdamW
    lr: float  # the optimizer's learning rate
    weight_decay: float = 0.0  # the optimizer's
    label_smoothing: float = 0.0  # nn.CrossEntropyLoss's
    # the loss's class weights: none, scikit-learn's balanced, or one number per emotion (ser.corpus.EMOTIONS)
    class_weights: Literal["none", "balanced"] | list[float] = "none"
    scheduler: Literal["none", "plateau", "cosine"] = "none"  # plateau steps on validation accuracy
    plateau_patience: int = 3  # ReduceLROnPlateau's patience, in epochs
    plateau_factor: float = 0.5  # ReduceLROnPlateau's factor
    refit: bool = False  # retrain on training + validation clips for the best epoch count, and keep that model
    early_stopping_patience: int | None = None  # stop after this many epochs without a better validation accuracy
    batch_size: int | None = None  # null: train.batch_size

    def check(self, where: str) -> None:
        if isinstance(self.class_weights, list):
            require(len(self.class_weights) == len(EMOTIONS), key_path(where, "class_weights"),
                     f"expected {len(EMOTIONS)} numbers, one per emotion ({', '.join(EMOTIONS)}), "
                     f"got {len(self.class_weights)}")
        require(self.epochs >= 1, key_path(where, "epochs"), f"expected at least 1, got {self.epochs}")


CLUSTER_LOCAL = "local"
CLUSTER_SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://")  # what distributed.Client connects to


def cluster_address_problem(address: str) -> str | None:
    """Why `address` names no engine ser.cluster runs, or None."""
    if address in ("", CLUSTER_LOCAL) or address.startswith(CLUSTER_SCHEMES):
        return None
    if address.startswith("ray://"):
        return (f"{address!r} is a Ray address; the pipeline runs on Dask distributed: give a Dask scheduler's "
                "tcp://host:port (docs/cluster.md)")
    return (f"expected '' (this machine), 'local' (a Dask cluster on this machine) or a Dask scheduler's "
            f"{' or '.join(CLUSTER_SCHEMES)}host:port, got {address!r}")


@dataclass(frozen=True)
class Cluster:
    address: str  # where augment's and features' map over files runs (ser.cluster); no stage declares it

    def check(self, where: str) -> None:
        problem = cluster_address_problem(self.address)
        require(problem is None, key_path(where, "address"), problem or "")


@dataclass(frozen=True)
class Arch:
    features: dict[str, Any]  # `recipe` names a ser.features recipe, the rest are its options
    model: dict[str, Any]  # options of the ser.models class
    train: TrainRecipe


@dataclass(frozen=True)
class Params:
    download: Download
    prepare: Prepare
    audio: Audio
    split: Split
    augment: Augment
    adaptation: Adaptation
    model: Model
    train: Train
    cores: int
    cluster: Cluster
    corpora: dict[str, Corpus]
    cross_corpus: CrossCorpus
    archs: dict[str, Arch]

    @property
    def arch(self) -> tuple[str, Arch]:
        """(model.arch, its section under `archs`)."""
        return self.model.arch, self.archs[self.model.arch]

    def check(self, where: str) -> None:
        require(self.cores >= 0, key_path(where, "cores"), f"expected 0 (every core) or more, got {self.cores}")
        for name, corpus in self.corpora.items():
            try:
                check_description(name, dataclasses.asdict(corpus), needs_speaker=True)
            except (ValueError, KeyError) as error:
                message = str(error.args[0]) if error.args else str(error)  # a KeyError's str() is quoted
                raise ParamsError(message if message.startswith(f"corpora.{name}") else
                                  f"corpora.{name}: {message}") from None
        require(self.model.arch in self.archs, key_path(where, "model.arch"),
                 f"{self.model.arch!r} has no section under archs (known: {', '.join(self.archs)})")
        described = set(self.corpora)
        for key, names, allowed in [("prepare.corpora", self.prepare.corpora, described),
                                    ("cross_corpus.corpora", self.cross_corpus.corpora, described),
                                    ("split.also_train_on", self.split.also_train_on, described),
                                    ("split.leave_one_corpus_out.corpora", self.split.leave_one_corpus_out.corpora,
                                     described | {RAVDESS})]:
            unknown = [name for name in names if name not in allowed]
            require(not unknown, key_path(where, key), f"{', '.join(unknown)} not described under corpora "
                                                   f"(known: {', '.join(sorted(allowed))})")
        # A corpus can train or be tested only once prepare has put it in the manifest.
        used = list(self.split.also_train_on)
        if self.split.protocol == "leave_one_corpus_out":
            used += [name for name in self.split.leave_one_corpus_out.corpora if name != RAVDESS]
        missing = sorted(set(used) - set(self.prepare.corpora))
        require(not missing, key_path(where, "prepare.corpora"),
                f"lacks {', '.join(missing)}, which split uses (split.also_train_on, or split.leave_one_corpus_out."
                f"corpora under that protocol): add them, e.g. -S 'prepare.corpora=[{', '.join(sorted(set(used)))}]'")


# ---------------------------------------------------------------------------------------------- entry points

def load_params(path: str | Path = "params.yaml") -> Params:
    """params.yaml as a checked `Params`; a ParamsError whose message begins with the file's path otherwise."""
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top, got {type(raw).__name__}")
    try:
        return parse(Params, raw, "")
    except ParamsError as error:
        raise ParamsError(f"{path}: {error}") from None


def as_plain(obj) -> Any:
    """Plain dicts and lists (for JSON model cards) of a parsed section, or of anything holding them."""
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, (list, tuple)):
        return [as_plain(item) for item in obj]
    if isinstance(obj, dict):
        return {key: as_plain(value) for key, value in obj.items()}
    return obj
