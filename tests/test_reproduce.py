"""What CI re-derives: each entry runs as the command a user would type, against a committed result."""

import json
from pathlib import Path

from ser.drift import WATCHED
from ser.config import load_params
from ser.split import PROTOCOLS
from ser.reproduce import CI_REDERIVES, command_for, git_identity, kept_result, ordered

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ("random", "whisper_mlp")  # (split.protocol, model.arch)


def test_the_default_runs_as_dvc_repro_and_first():
    entries = [("actor_kfold", "whisper_mlp"), ("random", "cnn_gru_attn"), ("random", "whisper_mlp")]
    assert ordered(entries, DEFAULT)[0] == ("random", "whisper_mlp")
    assert command_for("random", "whisper_mlp", DEFAULT) == ["dvc", "repro"]


def test_other_entries_set_both_protocol_and_arch():
    # An earlier experiment leaves its params in the workspace, so each one must set both.
    assert command_for("random", "cnn_gru_attn", DEFAULT) == [
        "dvc", "exp", "run", "-S", "split.protocol=random", "-S", "model.arch=cnn_gru_attn"]


def test_every_entry_has_a_committed_result_and_a_known_arch_and_protocol():
    params = load_params(ROOT / "params.yaml")
    for protocol, arch in CI_REDERIVES:
        assert (ROOT / kept_result(protocol, arch)).is_file(), f"CI would have nothing to compare {protocol}/{arch} with"
        kept = json.loads((ROOT / kept_result(protocol, arch)).read_text())
        # The drift check pairs the repeats (ser.drift.paired_tolerance): one run has no spread to go by.
        assert kept["repeats"] >= 2 and all(len([row[name] for row in kept["per_repeat"]]) == kept["repeats"]
                                            for name in WATCHED)
        assert arch in params.archs
        assert protocol in PROTOCOLS


def test_a_missing_git_identity_is_filled_but_a_present_one_kept():
    env = git_identity({"GIT_AUTHOR_NAME": "Ada"})
    assert env["GIT_AUTHOR_NAME"] == "Ada" and env["GIT_COMMITTER_NAME"] and env["GIT_AUTHOR_EMAIL"]
