"""augment, features and cross-corpus scoring on Dask workers (src/ser/cluster.py): the same bits as this process,
one model load per worker, a killed worker either retried or a clear failure with nothing written, and clusters
that would compute other bits refused."""

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser import CPU_CODE_PATHS
from ser.augment import augment_corpus, clips_and_copies
from ser.cluster import ClusterError, check_workers, cluster_address, environment, environment_problems, map_files
from ser.config import load_params
from ser.corpora import BadCorpusSpec
from ser.cross_corpus import score_corpus
from ser.features import compute_feature_cache, load_feature_cache, make_recipe
from ser.features.mfcc import MFCC
from ser.manifest import build_manifest
from ser.predict import Predictor
from synthetic import FOLDER_CORPUS_EMOTIONS, make_corpus, make_folder_corpus

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
AUGMENT = load_params(ROOT / "params.yaml").augment
WHISPER = {"recipe": "whisper_layers", "model": "Systran/faster-whisper-tiny.en", "trim_db": 35, "normalize": "clip"}


@pytest.fixture(scope="module")
def cluster():
    """2 single-threaded worker processes under nannies (which restart a killed one), as `dask worker` runs them.
    The tests that kill a worker come last."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as running:
        yield running


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    make_corpus(root / "raw", actors=(1, 2), song_actors=(), statements=(1,), seconds=0.6)
    manifest, _ = build_manifest(root / "raw", progress=False)
    return root, manifest.head(12)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))}


def test_augment_and_features_are_the_same_bits_on_two_dask_workers_as_in_one_process(cluster, corpus):
    root, manifest = corpus
    config = AUGMENT.__class__(**{**AUGMENT.__dict__, "copies": 2})
    serial = augment_corpus(manifest, root / "raw", root / "aug_serial", 16000, config, workers=1, progress=False)
    spread = augment_corpus(manifest, root / "raw", root / "aug_dask", 16000, config, progress=False,
                            address=cluster.scheduler_address)
    pd.testing.assert_frame_equal(serial, spread)
    assert len(serial) == 24 and tree_bytes(root / "aug_serial") == tree_bytes(root / "aug_dask")

    # The default arch's recipe over the clips and their copies, as the features stage would for an arch
    # that trains on copies.
    items = clips_and_copies(manifest, root / "raw", root / "aug_serial")
    compute_feature_cache(make_recipe(WHISPER, 16000), items, root / "feat_serial", workers=1, progress=False)
    compute_feature_cache(make_recipe(WHISPER, 16000), items, root / "feat_dask", progress=False,
                          address=cluster.scheduler_address)
    assert tree_bytes(root / "feat_serial") == tree_bytes(root / "feat_dask")
    features, index, _ = load_feature_cache(root / "feat_dask")
    assert features.shape[0] == len(items) == 36 and np.isfinite(features.astype(np.float32)).all()
    assert len(np.unique(features.reshape(len(items), -1), axis=0)) == 36  # every row its own clip's
    # Both workers took part.
    ran = cluster_tasks_run(cluster)
    assert len(ran) == 2 and all(count > 0 for count in ran.values())


def cluster_tasks_run(cluster) -> dict:
    with distributed.Client(cluster.scheduler_address) as client:
        return client.run(lambda dask_worker: dask_worker.state.transition_counter)


class CountingMFCC(MFCC):
    """MFCC whose "model" loads on first use, as Whisper's does, and whose rows say which process made them
    and how many loads that process had done: [pid, loads, ...]."""

    dtype = np.float32  # holds a pid exactly
    loads = 0  # in this process

    def __init__(self, sample_rate, marker: str | None = None, seconds_per_file: float = 0.0):
        super().__init__(sample_rate, n_mfcc=4, frames=4)
        self.marker, self.seconds_per_file, self._model = marker, seconds_per_file, None

    def __getstate__(self):
        return {**self.__dict__, "_model": None}

    @property
    def shape(self):
        return (6, 4)

    def extract(self, signal):
        if self._model is None:
            CountingMFCC.loads += 1
            self._model = "loaded"
        if self.marker:  # tells the test which process is working, so it can kill it mid-task
            Path(self.marker, str(os.getpid())).touch()
        time.sleep(self.seconds_per_file)
        mfcc = super().extract(signal).astype(np.float32)
        return np.vstack([np.full((1, 4), os.getpid()), np.full((1, 4), CountingMFCC.loads), mfcc])


def files(root: Path, count: int) -> pd.DataFrame:
    paths = sorted(str(path) for path in (root / "raw").rglob("*.flac"))
    rows = [(f"clip{i}", 0, paths[i % len(paths)]) for i in range(count)]
    return pd.DataFrame(rows, columns=["clip_id", "copy", "path"])


def test_each_worker_loads_the_model_once_not_once_per_file(cluster, corpus):
    root, _ = corpus
    items = files(root, 40)
    compute_feature_cache(CountingMFCC(16000, seconds_per_file=0.02), items, root / "counted", progress=False,
                          address=cluster.scheduler_address)
    features = load_feature_cache(root / "counted")[0].astype(np.float32)
    pids, loads = features[:, 0, 0], features[:, 1, 0]
    assert set(loads) == {1.0}, "a worker loaded the model again for a later file"
    assert len(set(pids)) == 2 and os.getpid() not in set(pids)


def test_cross_corpus_scoring_is_the_same_on_dask_workers_on_a_pool_and_in_one_process(cluster, model_dir, tmp_path):
    folder = tmp_path / "tones"
    make_folder_corpus(folder, per_label=2)
    broken = folder / "sad" / "broken.wav"
    broken.write_bytes(b"RIFF....WAVE but nothing else")
    with open(folder / "SHA256SUMS", "a") as sums:
        sums.write(f"{hashlib.sha256(broken.read_bytes()).hexdigest()}  sad/broken.wav\n")
    spec = {"folder": str(folder), "label": {"folder": True},
            "classes": {label: (None if label == "bored" else label) for label in FOLDER_CORPUS_EMOTIONS}}
    predictor = Predictor(model_dir, device="cpu", detect_speech=False)
    before = sum(cluster_tasks_run(cluster).values())
    scored = {where: score_corpus(predictor, spec, skip_bad_files=True, workers=workers, address=address)
              for where, workers, address in (("one process", 1, ""), ("pool", 2, ""),
                                              ("dask", 2, cluster.scheduler_address))}
    assert sum(cluster_tasks_run(cluster).values()) > before  # the Dask run did run on the workers
    assert scored["one process"] == scored["pool"] == scored["dask"]
    assert scored["dask"]["files"] == 8 and scored["dask"]["four_class"]["n"] == 8
    assert [entry["path"] for entry in scored["dask"]["skipped"]] == [str(broken)]
    with pytest.raises(BadCorpusSpec, match="broken.wav"):
        score_corpus(predictor, spec, workers=2, address=cluster.scheduler_address)


def test_a_worker_that_would_compute_other_bits_is_refused_and_named(cluster, corpus):
    root, manifest = corpus
    with distributed.Client(cluster.scheduler_address) as client:
        worker = sorted(client.scheduler_info()["workers"])[0]

        def set_code_path(value):
            if value is None:
                os.environ.pop("MKL_CBWR", None)
            else:
                os.environ["MKL_CBWR"] = value

        client.run(set_code_path, "AUTO", workers=[worker])
        try:
            with pytest.raises(ClusterError, match=rf"worker {worker}: its CPU code paths are not ser's "
                                                   r"\(MKL_CBWR=AUTO\).*--preload-nanny ser"):
                check_workers(client)
            with pytest.raises(ClusterError, match=r"MKL_CBWR=AUTO"):
                augment_corpus(manifest, root / "raw", root / "refused", 16000, AUGMENT, progress=False,
                               address=cluster.scheduler_address)
            assert not (root / "refused").exists()
        finally:
            client.run(set_code_path, CPU_CODE_PATHS["MKL_CBWR"], workers=[worker])
        check_workers(client, str(next((root / "raw").rglob("*.flac"))))
        with pytest.raises(ClusterError, match=rf"worker .*: it cannot read {root}/nowhere.flac: .*same path"):
            check_workers(client, str(root / "nowhere.flac"))


def test_environment_differences_are_each_named():
    mine = environment()
    theirs = {**mine, "code": "0" * 64, "libraries": {**mine["libraries"], "numpy": "1.26.4"},
              "numpy_kernels_on": ["X86_V4"], "readable": True}
    problems = environment_problems(mine, theirs, "/data/raw/a.flac")
    assert len(problems) == 3
    assert "ser code differs" in problems[0]
    assert f"numpy 1.26.4 (driver: {mine['libraries']['numpy']})" in problems[1]
    assert "numpy loaded before them: X86_V4" in problems[2]
    assert environment_problems(mine, {**mine, "readable": True}, "/x") == []


def test_an_address_is_checked_before_anything_runs(monkeypatch, tmp_path):
    monkeypatch.setattr("ser.cluster.CONNECT_TIMEOUT_S", 2)
    with pytest.raises(ClusterError, match=r"Ray address; the pipeline runs on Dask"):
        list(map_files(len, None, ["a"], workers=1, address="ray://head:10001", progress=False))
    with pytest.raises(ClusterError, match=r"cluster.address tcp://127.0.0.1:9: no Dask scheduler answered"):
        augment_corpus(pd.DataFrame({"clip_id": ["x"], "path": ["x.wav"]}), tmp_path, tmp_path / "out", 16000,
                       AUGMENT, progress=False, address="tcp://127.0.0.1:9")
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("SER_CLUSTER_ADDRESS", "tcp://10.0.0.1:8786")
    assert cluster_address("") == "tcp://10.0.0.1:8786"
    monkeypatch.delenv("SER_CLUSTER_ADDRESS")
    assert cluster_address(" local ") == "local"


def test_the_address_is_no_stages_param_and_params_check_it(tmp_path):
    import yaml

    from ser.config import ParamsError
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        params = [str(p).split(".")[0] for p in stage.get("do", stage).get("params", [])]
        assert "cluster" not in params, name
        assert name not in ("augment", "features") or "cores" not in params, name
    assert load_params(ROOT / "params.yaml").cluster.address == ""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["cluster"]["address"] = "ray://head:10001"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"cluster\.address: 'ray://head:10001' is a Ray address"):
        load_params(tmp_path / "params.yaml")


def kill_first_worker_to_start(marker: Path, killed: list) -> threading.Thread:
    def kill():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = list(marker.iterdir())
            if started:
                pid = int(started[0].name)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)
    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_a_worker_killed_mid_stage_is_replaced_and_the_cache_is_the_same_bits(cluster, corpus):
    root, _ = corpus
    items = files(root, 24)
    marker = root / "started_retry"
    marker.mkdir()
    with distributed.Client(cluster.scheduler_address) as client:
        client.wait_for_workers(2)
        workers = set(client.run(os.getpid).values())
    killed = []
    thread = kill_first_worker_to_start(marker, killed)
    compute_feature_cache(CountingMFCC(16000, str(marker), 0.1), items, root / "survived", progress=False,
                          address=cluster.scheduler_address)
    thread.join()
    assert killed and killed[0] in workers
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    compute_feature_cache(CountingMFCC(16000), items, root / "alone", workers=1, progress=False)
    survived, alone = load_feature_cache(root / "survived")[0], load_feature_cache(root / "alone")[0]
    np.testing.assert_array_equal(survived[:, 2:], alone[:, 2:])  # all but the pid and load rows
    made_by = set(survived[:, 0, 0].astype(int))
    assert 0 not in made_by and killed[0] not in made_by  # every row written, none by the process killed mid-file


def allowed_failures(dask_scheduler, count):
    previous, dask_scheduler.allowed_failures = dask_scheduler.allowed_failures, count
    return previous


def test_a_stage_whose_worker_dies_with_no_retry_left_fails_clearly_and_writes_nothing(cluster, corpus):
    root, _ = corpus
    items = files(root, 24)
    marker = root / "started_fail"
    marker.mkdir()
    out = root / "failed"
    out.mkdir()
    (out / "before.txt").write_text("the previous output")
    with distributed.Client(cluster.scheduler_address) as client:
        client.wait_for_workers(2)
        previous = client.run_on_scheduler(allowed_failures, count=0)  # distributed.scheduler.allowed-failures
        killed = []
        thread = kill_first_worker_to_start(marker, killed)
        try:
            with pytest.raises(ClusterError, match=r"died running .*\.flac.* on every try.*the stage wrote nothing"):
                compute_feature_cache(CountingMFCC(16000, str(marker), 0.1), items, out, progress=False,
                                      address=cluster.scheduler_address)
        finally:
            client.run_on_scheduler(allowed_failures, count=previous)
        thread.join()
    assert killed
    assert [path.name for path in out.iterdir()] == ["before.txt"]  # the previous output, untouched
    assert not list(root.glob(".failed.*"))  # and no temporary beside it
