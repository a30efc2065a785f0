"""`dvc repro` of augment and features against a real Dask cluster: a scheduler and 2 workers started with Dask's
own command-line tools on 127.0.0.1, in a temporary git repository on a synthetic corpus. The outputs must hash,
in dvc.lock, as this machine's own run of the same stages does."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from synthetic import make_corpus

pytest.importorskip("distributed")
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e


def run(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def locked_outs(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {out["path"]: out["md5"] for name in ("augment", "features") for out in lock[name]["outs"]}


@pytest.fixture
def repo(tmp_path):
    make_corpus(tmp_path / "mirror", actors=(1, 2), song_actors=(1,), statements=(1,), seconds=0.6)
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "stages", "src"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, repo / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["download"]["source"] = "../mirror"
    params["archs"]["whisper_mlp"]["features"]["model"] = "Systran/faster-whisper-tiny.en"
    # An arch that trains on copies, so that features encodes the augmented files too.
    params["archs"]["whisper_mlp"]["train"]["augmented_copies"] = True
    params["augment"]["copies"] = 2
    params["corpora"], params["cross_corpus"]["corpora"] = {}, []  # RAVDESS alone
    params["split"]["leave_one_corpus_out"]["corpora"] = ["ravdess"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("SER_DOWNLOAD_SOURCE", "SER_CLUSTER_ADDRESS")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(repo / "src")  # the stages, and the workers, run the repository's copy of the code
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
               DVC_NO_ANALYTICS="1")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-q", "-m", "pipeline"]):
        run(cmd, repo, env)
    return repo, env


@pytest.fixture
def dask_cluster(tmp_path, repo):
    """`dask scheduler` and `dask worker --nworkers 2`, as a user would start them; stopped afterwards."""
    _, env = repo
    scheduler_file = tmp_path / "scheduler.json"
    logs = tmp_path / "dask_logs"
    logs.mkdir()
    started = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                 "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                env=env, cwd=tmp_path, stdout=open(logs / "scheduler.log", "w"),
                                stderr=subprocess.STDOUT, start_new_session=True)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        # --preload-nanny ser: the nanny sets ser's CPU code paths in its environment before it starts the worker
        # processes, which then load numpy under them. The workers' working directory is not the repository's.
        started.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1",
                                         "--preload-nanny", "ser", "--host", "127.0.0.1", "--no-dashboard"],
                                        env=env, cwd=tmp_path, stdout=open(logs / "worker.log", "w"),
                                        stderr=subprocess.STDOUT, start_new_session=True))
        yield address
    finally:
        for process in reversed(started):
            os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(started):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_dvc_repro_on_a_dask_cluster_gives_the_lock_of_this_machine(repo, dask_cluster):
    repo, env = repo
    output = run(["dvc", "repro", "features"], repo, env)
    assert "Running stage 'augment'" in output and "on this machine" in output
    here = locked_outs(repo)

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["cluster"]["address"] = dask_cluster
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # No stage reads the address: pointing the pipeline at a cluster changes nothing DVC tracks.
    assert "up to date" in run(["dvc", "status", "features"], repo, env)
    for stage in ("augment", "features"):
        output = run(["dvc", "repro", "--force", "--single-item", stage], repo, env)
        assert f"on the Dask cluster at {dask_cluster} (2 workers)" in output, output
    assert locked_outs(repo) == here

    from distributed import Client
    with Client(dask_cluster, timeout=30) as client:
        ran = client.run(lambda dask_worker: dask_worker.state.transition_counter)
    assert len(ran) == 2 and all(count > 0 for count in ran.values()), ran
