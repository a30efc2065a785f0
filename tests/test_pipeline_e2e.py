"""`dvc repro` of the whole pipeline, in a temporary git repository, on a synthetic corpus."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from object_store import ACCESS_KEY, SECRET_KEY, seaweedfs_s3
from synthetic import FOLDER_CORPUS_EMOTIONS, make_corpus, make_folder_corpus

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def run(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    make_corpus(base / "mirror")
    repo = base / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "stages", "src"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, repo / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    # Relative folders beside the repository, as params.yaml's own (../shared/...): they must work in a queued
    # experiment too, which runs in a copy of the workspace under .dvc/tmp/exps/.
    params["download"]["source"] = "../mirror"
    params["archs"]["whisper_mlp"]["features"]["model"] = "Systran/faster-whisper-tiny.en"
    params["archs"]["whisper_mlp"]["train"]["epochs"] = 4
    params["archs"]["cnn_gru_attn"]["train"]["epochs"] = 2
    # Four repeats: the drift check pairs them, and with two t(0.975, 1) = 12.7 would make its tolerance wide.
    params["split"]["repeats"] = 4
    make_folder_corpus(base / "tones")
    params["corpora"] = {"tones": {
        "folder": "../tones", "label": {"folder": True}, "speaker": {"pattern": "take_(?P<speaker>[0-9]+)"},
        "classes": {label: (None if label == "bored" else label) for label in FOLDER_CORPUS_EMOTIONS}}}
    params["prepare"]["corpora"] = []  # RAVDESS alone until the leave-one-corpus-out test
    params["cross_corpus"]["corpora"] = ["tones"]
    params["split"]["leave_one_corpus_out"]["corpora"] = ["ravdess", "tones"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "SER_DOWNLOAD_SOURCE"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(repo / "src")  # the stages run the repository's copy of the code, which a test edits
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t", DVC_NO_ANALYTICS="1")
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "pipeline"], repo, env)
    return repo, env


@pytest.fixture
def reproduced(repo):
    """The repository with its params' pipeline run: a no-op after the first test, and what lets any test run
    alone (`pytest -k drift`), since the first one is the one that runs every stage."""
    run(["dvc", "repro"], *repo)
    return repo


def test_repro_runs_every_stage_then_nothing(repo):
    repo, env = repo
    output = run(["dvc", "repro"], repo, env)
    assert stages_run(output) == ["download", "prepare", "split", "augment", "features", "train", "evaluate",
                                  "cross_corpus@tones"]
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "recall", "n_test",
                "arch", "protocol", "device"):
        assert key in metrics
    assert metrics["arch"] == "whisper_mlp" and metrics["n_test"] == 18 and metrics["repeats"] == 4
    assert metrics["accuracy"] > 0.5  # tones an octave apart per emotion are easy
    # Each repeat redraws the split and the training seed; the headline is their mean.
    runs = metrics["runs"]
    assert [(run["repeat"], run["split_seed"], run["train_seed"]) for run in runs] == [
        (r, 41 + r, 41 + r) for r in (1, 2, 3, 4)]
    assert metrics["accuracy"] == pytest.approx(sum(run["accuracy"] for run in runs) / 4)
    assert "accuracy_ci95" in metrics and set(metrics["recall"]) == set(metrics["pooled"]["recall"])
    predictions = json.loads((repo / "reports/predictions.json").read_text())
    assert len(predictions) == 4 * 18 and {"actual", "predicted", "repeat"} <= set(predictions[0])
    assert (repo / "reports/confusion_matrix.png").stat().st_size > 10_000
    assert json.loads((repo / "reports/train/metrics.json").read_text())["step"] == 3
    assert json.loads((repo / "reports/source.json").read_text())["source"] == "mirror"
    assert sorted(p.name for p in (repo / "models").iterdir()) == ["repeat_1", "repeat_2", "repeat_3", "repeat_4"]
    card = json.loads((repo / "models/repeat_2/model.json").read_text())
    assert card["seed"] == 43 and card["split"]["split_seed"] == 43
    assert card["feature_recipe"]["recipe"] == "whisper_layers" and card["labels"][0] == "neutral"

    # The other corpus: the 4 runs as one ensemble, boredom left out and counted, every file checksummed.
    other = json.loads((repo / "reports/cross_corpus/tones.json").read_text())
    assert (other["files"], other["left_out"], other["checksums_verified"], other["runs"]) == (12, {"bored": 3}, 15, 4)
    assert other["shared"]["classes"] == ["neutral", "happy", "sad", "angry"] and other["four_class"]["n"] == 12
    rows = json.loads((repo / "reports/cross_corpus/tones_predictions.json").read_text())
    assert len(rows) == 12 and {row["actual"] for row in rows} == {"neutral", "happy", "sad", "angry"}
    assert other["shared"]["accuracy"] == pytest.approx(sum(r["actual"] == r["predicted"] for r in rows) / 12)
    assert (repo / "reports/cross_corpus/tones_confusion.png").stat().st_size > 10_000
    assert (repo / "reports/results/cross_corpus/tones/random_whisper_mlp.json").exists()

    assert stages_run(run(["dvc", "repro"], repo, env)) == []

    # The trained model serves new recordings through the installed console command (the synthetic
    # corpus is tones, which the speech detector rightly finds no speech in).
    clips = sorted((repo.parent / "mirror").rglob("*.flac"))[:2]
    output = run(["ser", "predict", *map(str, clips), "--model", "models", "--no-speech-check"], repo, env)
    lines = [line.split("\t") for line in output.splitlines() if line.endswith(tuple("0123456789"))]
    assert [Path(line[0]).name for line in lines] == [c.name for c in clips]
    assert all(line[1] in card["labels"] for line in lines)


def test_a_misspelt_param_fails_and_names_it(reproduced):
    repo, env = reproduced
    params_text = (repo / "params.yaml").read_text()
    try:
        # DVC itself refuses to override a key params.yaml lacks; `+key=value` appends it, and then the stages'
        # own parsing (ser.config) stops the first stage that runs, naming the key.
        for assignment, message in (("archs.whisper_mlp.train.lr_typo=1", "Could not override"),
                                    ("+archs.whisper_mlp.train.lr_typo=1", "params.yaml: archs.whisper_mlp.train.lr_typo: "
                                                                          "unknown key (known: augmented_copies, ")):
            failed = subprocess.run(["dvc", "exp", "run", "-S", assignment], cwd=repo, env=env,
                                    capture_output=True, text=True)
            assert failed.returncode != 0 and message in failed.stdout + failed.stderr
            assert "archs.whisper_mlp.train.lr_typo" in failed.stdout + failed.stderr
            assert "Traceback" not in failed.stdout + failed.stderr
    finally:
        (repo / "params.yaml").write_text(params_text)
    # DVC removed train's outputs before the stage failed; the params as they were bring them back.
    assert set(stages_run(run(["dvc", "repro"], repo, env))) <= {"train", "evaluate", "cross_corpus@tones"}
    assert "up to date" in run(["dvc", "status"], repo, env)


def test_train_param_reruns_train_and_what_reads_the_model_only(reproduced):
    repo, env = reproduced
    first = json.loads((repo / "reports/metrics.json").read_text())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["batch_size"] = 32
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert stages_run(run(["dvc", "repro"], repo, env)) == ["train", "evaluate", "cross_corpus@tones"]
    params["train"]["batch_size"] = 64
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # Back to the first params: DVC restores train from its run cache; forcing it retrains.
    run(["dvc", "repro", "--force", "-s", "train"], repo, env)
    run(["dvc", "repro", "--force", "-s", "evaluate"], repo, env)
    assert json.loads((repo / "reports/metrics.json").read_text()) == first


def test_a_label_order_edit_reruns_train_and_evaluate(reproduced):
    repo, env = reproduced
    first = json.loads((repo / "reports/metrics.json").read_text())
    corpus = repo / "src/ser/corpus.py"
    original = corpus.read_text()
    listed = 'EMOTIONS = ("neutral", "calm", '
    assert listed in original
    corpus.write_text(original.replace(listed, 'EMOTIONS = ("calm", "neutral", '))
    try:
        assert {"train", "evaluate"} <= set(stages_run(run(["dvc", "repro"], repo, env)))
        card = json.loads((repo / "models/repeat_1/model.json").read_text())
        assert card["labels"][:2] == ["calm", "neutral"]
        assert list(json.loads((repo / "reports/metrics.json").read_text())["recall"])[:2] == ["calm", "neutral"]
    finally:
        corpus.write_text(original)
    run(["dvc", "repro"], repo, env)
    assert json.loads((repo / "models/repeat_1/model.json").read_text())["labels"][:2] == ["neutral", "calm"]
    assert json.loads((repo / "reports/metrics.json").read_text()) == first


def test_drift_check_passes_on_reproduction_and_fails_on_a_planted_drop(reproduced):
    repo, env = reproduced
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "baseline"], repo, env)
    # The tolerance comes from the two results' repeats, paired (ser.drift.paired_tolerance).
    check = [sys.executable, "-m", "ser.drift"]
    assert "within their tolerance" in run(check, repo, env)
    # A real re-derivation, not DVC's run cache: every model trained and scored again.
    run(["dvc", "repro", "--force", "--single-item", "train"], repo, env)
    run(["dvc", "repro", "--force", "--single-item", "evaluate"], repo, env)
    assert "within their tolerance" in run(check, repo, env)
    params_text = (repo / "params.yaml").read_text()
    params = yaml.safe_load(params_text)
    # A model that cannot learn: an MLP that barely moves and no closed-form logistic member beside it.
    params["archs"]["whisper_mlp"]["train"]["lr"] = 1e-9
    params["archs"]["whisper_mlp"]["model"]["logistic_c"] = None
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro"], repo, env)
    failed = subprocess.run(check, cwd=repo, env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "drift: reports/metrics.json: accuracy moved" in failed.stderr
    assert "accuracy" in failed.stdout  # DVC's diff table is printed
    (repo / "params.yaml").write_text(params_text)
    run(["dvc", "repro"], repo, env)
    assert "within their tolerance" in run(check, repo, env)


def test_cross_corpus_names_a_bad_file_and_its_metrics_diff(reproduced):
    repo, env = reproduced
    folder = repo.parent / "tones"
    params_text = (repo / "params.yaml").read_text()
    broken = folder / "sad" / "take_9.wav"
    broken.write_text("not audio")
    try:
        # A corpus folder outside the workspace is a param, not a dep (as download.source): its copy is re-made
        # on demand, and then read inside the workspace.
        run(["dvc", "repro", "-f", "-s", "download"], repo, env)
        failed = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True)
        copied = Path("data/corpora/tones/sad/take_9.wav")
        assert failed.returncode != 0 and f"{copied}" in failed.stderr and "skip_bad_files" in failed.stderr
        assert not (repo / "reports/cross_corpus/tones.json").exists()  # nothing half-written
        params = yaml.safe_load(params_text)
        params["cross_corpus"]["skip_bad_files"] = True
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert stages_run(run(["dvc", "repro"], repo, env)) == ["cross_corpus@tones"]
        skipped = json.loads((repo / "reports/cross_corpus/tones.json").read_text())["skipped"]
        assert [entry["path"] for entry in skipped] == [str(copied)]
    finally:
        broken.unlink()
        (repo / "params.yaml").write_text(params_text)
    run(["dvc", "repro", "-f", "-s", "download"], repo, env)
    run(["dvc", "repro"], repo, env)
    assert "reports/cross_corpus/tones.json" in json.loads(run(["dvc", "metrics", "show", "--json"], repo, env))[""][
        "data"]
    # A class-map edit re-runs this stage alone, and `dvc metrics diff` shows what moved against the commit
    # (this test's own, so that it runs alone too).
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "--allow-empty", "-m", "cross-corpus baseline"], repo, env)
    params = yaml.safe_load(params_text)
    params["corpora"]["tones"]["classes"]["sad"] = None
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        # download and prepare read every corpus description; neither output changes, so nothing else re-runs.
        assert stages_run(run(["dvc", "repro"], repo, env)) == ["download", "prepare", "cross_corpus@tones"]
        diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo, env))
        assert diff["reports/cross_corpus/tones.json"]["files"] == {"old": 12, "new": 9, "diff": -3}
    finally:
        (repo / "params.yaml").write_text(params_text)
    run(["dvc", "repro"], repo, env)


def test_a_fresh_clone_pulls_from_an_object_store_and_has_nothing_to_run(reproduced, tmp_path):
    repo, env = reproduced
    env = {**env, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with seaweedfs_s3(tmp_path / "seaweedfs", bucket="ser-cache") as endpoint:
        # What the README tells a team to run, with their bucket and endpoint.
        run(["dvc", "remote", "add", "-f", "-d", "team", "s3://ser-cache/ser"], repo, env)
        run(["dvc", "remote", "modify", "team", "endpointurl", endpoint], repo, env)
        run(["git", "add", "-A"], repo, env)
        run(["git", "commit", "-q", "--allow-empty", "-m", "team remote"], repo, env)
        assert stages_run(run(["dvc", "repro"], repo, env)) == []
        run(["dvc", "push"], repo, env)

        clone = tmp_path / "clone"
        run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
        assert not (clone / "models").exists()
        run(["dvc", "pull"], clone, env)
        output = run(["dvc", "repro"], clone, env)
        assert stages_run(output) == [] and "up to date" in output
        assert "up to date" in run(["dvc", "status"], clone, env)

        # The model registry entry (dvc.yaml's artifacts), once a version is registered (a GTO git
        # tag), downloads the trained model by name from the remote.
        run(["gto", "register", "emotion-model", "--version", "v0.1.0", "-m", "e2e model"], repo, env)
        run(["dvc", "artifacts", "get", str(repo), "emotion-model", "-o", str(tmp_path / "model")], tmp_path, env)
        got = sorted(p.relative_to(tmp_path / "model") for p in (tmp_path / "model").rglob("*") if p.is_file())
        assert got == sorted(p.relative_to(repo / "models") for p in (repo / "models").rglob("*") if p.is_file())
        assert (tmp_path / "model/repeat_1/model.pt").read_bytes() == (repo / "models/repeat_1/model.pt").read_bytes()


def test_experiment_switches_arch_and_its_recipe(reproduced):
    repo, env = reproduced
    output = run(["dvc", "exp", "run", "-S", "model.arch=cnn_gru_attn"], repo, env)
    assert stages_run(output) == ["features", "train", "evaluate", "cross_corpus@tones"]
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["arch"] == "cnn_gru_attn" and {run["epochs_run"] for run in metrics["runs"]} == {2}
    diff = run(["dvc", "metrics", "diff", "--json"], repo, env)
    assert "reports/metrics.json" in json.loads(diff)


def test_actor_kfold_reuses_features_and_reports_every_fold(reproduced):
    repo, env = reproduced
    arch = yaml.safe_load((repo / "params.yaml").read_text())["model"]["arch"]  # the previous experiment's
    output = run(["dvc", "exp", "run", "-S", "split.protocol=actor_kfold", "-S", "split.actor_kfold.folds=2"],
                 repo, env)
    # Augmentation and features are shared by every protocol and fold.
    assert stages_run(output) == ["split", "train", "evaluate", "cross_corpus@tones"]
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["protocol"] == "actor_kfold" and metrics["test_subset"] == "speech"
    assert [(run["repeat"], run["test_actors"]) for run in metrics["runs"]] == [
        (r, actors) for r in (1, 2, 3, 4) for actors in ([1, 2], [3, 4])]
    assert metrics["n_test"] == 64 and all(run["n_test"] == 32 for run in metrics["runs"])  # speech only
    assert "accuracy_std" in metrics and "accuracy_fold_std" in metrics and metrics["pooled"]["n_test"] == 4 * 64
    kept = json.loads((repo / f"reports/results/actor_kfold/{arch}.json").read_text())
    assert kept["accuracy"] == metrics["accuracy"] and kept["commit"] and kept["train_seconds"] > 0
    # Earlier results stay beside it: committed, or left by the previous experiment.
    assert {p.name for p in (repo / "reports/results/random").iterdir()} == {"whisper_mlp.json", f"{arch}.json"}
    assert sorted(str(p.parent.relative_to(repo / "models")) for p in (repo / "models").rglob("model.pt")) == [
        f"repeat_{r}/fold_{k}" for r in (1, 2, 3, 4) for k in (1, 2)]
    # The run models predict as one ensemble: an emotion and every class's probability. The corpus is tones,
    # on which the speech detector's verdict varies (0.48 s of "speech" in 0.8 s of this one), so it is not asked.
    clip = sorted((repo.parent / "mirror").rglob("*.flac"))[0]
    [result] = json.loads(run(["ser", "predict", str(clip), "--json", "--no-speech-check"], repo, env))
    assert result["status"] == "predicted" and result["emotion"] in result["probabilities"]
    assert len(result["probabilities"]) == 8 and sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-3)


def test_leave_one_corpus_out_trains_on_the_others_and_scores_each_corpus(reproduced):
    import pandas as pd

    repo, env = reproduced
    output = run(["dvc", "exp", "run", "-S", "split.protocol=leave_one_corpus_out", "-S", "prepare.corpora=[tones]",
                  "-S", "split.repeats=2", "-S", "model.arch=whisper_mlp"], repo, env)
    assert {"prepare", "split", "train", "evaluate"} <= set(stages_run(output))
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["protocol"] == "leave_one_corpus_out" and metrics["standardize_within"] == "corpus"
    assert list(metrics["corpora"]) == ["ravdess", "tones"] and metrics["repeats"] == 2
    assert metrics["corpora"]["ravdess"]["batch"]["n"] == 64 and metrics["corpora"]["tones"]["single"]["n"] == 12
    for mode in ("batch", "single"):  # a repeat's score is the mean over its corpora
        runs = [run[mode]["four_class_ua"] for run in metrics["runs"]]
        assert metrics[mode]["four_class_ua"] == pytest.approx(sum(runs) / len(runs))
        assert 0 <= metrics[mode]["four_class_ua"] <= 1
    assert json.loads((repo / "reports/results/leave_one_corpus_out/whisper_mlp.json").read_text())["commit"]

    # No speaker, and no clip of the tested corpus, on the training side; validation from the training corpora.
    split = pd.read_parquet(repo / "data/split.parquet")
    for (repeat, fold), assignment in split.groupby(["repeat", "fold"]):
        tested = assignment[assignment["partition"] == "test"]
        other = assignment[assignment["partition"] != "test"]
        assert tested["corpus"].nunique() == 1 and tested["corpus"].iloc[0] not in set(other["corpus"])
        assert not set(tested["speaker"]) & set(other["speaker"])
        validation = assignment[assignment["partition"] == "validation"]
        assert len(validation) and not set(validation["speaker"]) & set(assignment.loc[
            assignment["partition"] == "train", "speaker"])
    card = json.loads((repo / "models/repeat_1/fold_2/model.json").read_text())
    assert card["split"]["test_corpus"] == "tones" and card["split"]["train_corpora"] == ["ravdess"]
    # Each fold trains on one corpus here, whose pooled statistics are its own: no group step (ser.adaptation).
    assert "adaptation" not in card

    # `ser predict --adapt all` standardizes the folder on its own statistics; one file alone keeps the old path.
    folder = repo / "data/corpora/tones"
    adapted = json.loads(run(["ser", "predict", str(folder), "--adapt", "all", "--no-speech-check", "--json",
                              "--csv", str(repo.parent / "adapted.csv")], repo, env).split("\nwrote")[0])
    alone = json.loads(run(["ser", "predict", str(folder), "--no-speech-check", "--json",
                            "--csv", str(repo.parent / "alone.csv")], repo, env).split("\nwrote")[0])
    assert len(adapted) == len(alone) == 15 and all(r["status"] == "predicted" for r in adapted)
    assert [r["probabilities"] for r in adapted] != [r["probabilities"] for r in alone]


def test_a_queued_experiment_runs_with_relative_corpus_folders(reproduced):
    repo, env = reproduced
    run(["git", "checkout", "--", "."], repo, env)  # the committed baseline's params and lock
    run(["dvc", "checkout"], repo, env)
    # params.yaml names its corpora by relative folders (../mirror, ../tones), as the real one does (../shared/...).
    run(["dvc", "exp", "run", "--queue", "-S", "train.seed=101"], repo, env)
    output = run(["dvc", "exp", "run", "--run-all"], repo, env)
    status = run(["dvc", "queue", "status"], repo, env)
    assert "Success" in status and "Failed" not in status, output + status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env))
    experiments = [exp for row in shown for exp in (row.get("experiments") or [])]
    assert any("cross_corpus" in json.dumps(exp) and "tones.json" in json.dumps(exp) for exp in experiments)
