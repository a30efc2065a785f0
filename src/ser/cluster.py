"""Where a stage's map over files runs: this process, a pool of this machine's cores, or a Dask cluster.

augment and features do the same thing to every file: read it, compute, return bytes or an array. `map_files`
runs that task over a list of files on one of three engines, picked by params' `cluster.address` (or the
environment variable SER_CLUSTER_ADDRESS, which wins) and `cores`:

- ""                    this machine: the task in this process (cores 1), or a process pool of `cores` workers;
- "local"               a Dask LocalCluster of `cores` single-threaded worker processes on this machine;
- "tcp://host:8786"...  a running Dask scheduler (`dask scheduler`, `dask worker ... --preload-nanny ser`).

The caller places every result by its index, so the outputs are the same bits whichever engine ran and in
whatever order the results came back (tests/test_cluster.py). Like `cores`, the address is in no stage's
params in dvc.yaml.

Why Dask distributed and not Ray (docs/cluster.md): it is a pure-Python wheel of ~10 MB (dask + distributed),
against Ray's ~70 MB with its own object store and raylet; a LocalCluster of 2 workers starts in ~1 s; its
`dask scheduler` / `dask worker` command-line tools are what HPC sites already run (dask-jobqueue,
dask-kubernetes); GPUs are worker resources (`--resources GPU=1`); and it reads and writes pandas and
Parquet natively, should a later stage want dataframes rather than files.

What a worker must see: the workspace's data/ (raw, corpora, augmented) at the same absolute path as the
driver, read-only (a shared filesystem), the same `ser` code and the same versions of the numeric libraries;
`check_workers` refuses a cluster that lacks any of them, naming the worker and the difference. Workers
never write: they return each file's result to the driver, which writes the output under ser.io.atomic_path,
so a stage that fails, or whose workers die, leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import CPU_CODE_PATHS
from .config import CLUSTER_LOCAL, cluster_address_problem

ADDRESS_VARIABLE = "SER_CLUSTER_ADDRESS"
# The libraries whose versions decide the bits of an augmented copy or a feature.
NUMERIC_LIBRARIES = ("numpy", "scipy", "librosa", "soundfile", "soxr", "numba", "torch", "ctranslate2")
CONNECT_TIMEOUT_S = 30
WORKERS_TIMEOUT_S = 60


class ClusterError(RuntimeError):
    """A cluster that cannot run the stage as the pipeline needs; the message names the address or worker."""


def cluster_address(address: str) -> str:
    """The address a stage uses: SER_CLUSTER_ADDRESS where set, else params' `cluster.address`."""
    return os.environ.get(ADDRESS_VARIABLE, address).strip()


# ------------------------------------------------------------------------------------------- the task side

class Shared:
    """What every task of one map shares on a worker, such as a feature recipe whose model loads on first use.

    On Dask it is scattered once to every worker and handed to each task as the same object, so the model a
    task loads into it stays for the worker's next tasks: one load per worker, not per file. A worker that
    gets it later (one restarted after a crash) unpickles it afresh and loads its own.
    """

    def __init__(self, payload):
        self.payload = payload
        self.ready = False  # a task has run on it in this process, so its model is loaded

    def __getstate__(self):
        return {"payload": self.payload, "ready": False}


def one_blas_thread():
    """Every engine runs its tasks with single-threaded BLAS: OpenBLAS's sums depend on its thread count (librosa's
    MFCC, which goes through numpy's matrix product, changed in float16 between 1 and 2 threads), so a task's
    result must not depend on the cores of the process it lands in. Returns a context that restores them."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


_first_task = threading.Lock()
_blas_limited = False  # in this worker process


def run_batch(task: Callable, shared: Shared, batch: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """A Dask task: `task(payload, item)` for each (index, item) of `batch`."""
    global _blas_limited
    if not shared.ready:
        # A worker with several threads would otherwise load one model per thread at its first tasks.
        with _first_task:
            if not _blas_limited:  # Dask's nanny sets OPENBLAS_NUM_THREADS=1, unless its config says otherwise
                one_blas_thread()
                _blas_limited = True
            results = [(index, task(shared.payload, item)) for index, item in batch]
            shared.ready = True
        return results
    return [(index, task(shared.payload, item)) for index, item in batch]


_pool_task: Callable | None = None
_pool_payload: Any = None


def _init_pool(task: Callable, payload) -> None:
    global _pool_task, _pool_payload
    _pool_task, _pool_payload = task, payload
    one_blas_thread()  # for the worker's lifetime: the task's libraries are loaded by now (unpickling it imported them)


def _pool_call(job: tuple[int, Any]) -> tuple[int, Any]:
    index, item = job
    return index, _pool_task(_pool_payload, item)


# ------------------------------------------------------------------------------------------- the map

def map_files(task: Callable[[Any, Any], Any], payload, items: Sequence, *, workers: int, address: str = "",
              parallel: bool = True, start_method: str = "fork", desc: str = "", unit: str = "file",
              progress: bool = True, batch_size: int = 4,
              readable: Callable[[Any], str] | None = None) -> Iterator[tuple[int, Any]]:
    """(index, task(payload, items[index])) for every item, in the order they finish.

    `task` is a module-level function (workers import it by name); `payload` travels to each worker once.
    `parallel` False keeps a local map in this process (a model on this machine's GPU). `readable(item)` gives
    the path a worker reads for an item: the cluster is checked to see the first one before any task runs.
    `batch_size` items go to a process or a Dask task at a time.
    """
    problem = cluster_address_problem(address)
    if problem:
        raise ClusterError(f"cluster.address: {problem}")
    say = (lambda where: print(f"{desc}: {len(items)} {unit}s {where}", file=sys.stderr)) if progress else None
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress)
    try:
        if address:
            results = _dask_map(task, payload, items, address, workers, batch_size, readable, say)
        elif parallel and workers > 1 and len(items) > 1:
            say and say(f"on this machine ({workers} processes)")
            results = _pool_map(task, payload, items, workers, start_method, batch_size)
        else:
            say and say("on this machine (in this process)")
            results = _serial_map(task, payload, items)
        for index, result in results:
            bar.update()
            yield index, result
    finally:
        bar.close()


def _serial_map(task, payload, items):
    with one_blas_thread():
        for index, item in enumerate(items):
            yield index, task(payload, item)


def _pool_map(task, payload, items, workers, start_method, batch_size):
    context = multiprocessing.get_context(start_method)
    with context.Pool(workers, initializer=_init_pool, initargs=(task, payload)) as pool:
        yield from pool.imap_unordered(_pool_call, enumerate(items), chunksize=batch_size)


def _dask_map(task, payload, items, address, workers, batch_size, readable, say):
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    with connect(address, workers) as client:
        check_workers(client, readable(items[0]) if readable and len(items) else None)
        if say:
            say(f"on the Dask cluster at {client.scheduler.address} ({len(client.scheduler_info()['workers'])} "
                "workers)")
        shared = client.scatter(Shared(payload), broadcast=True, hash=False)
        batches = [[(index, items[index]) for index in range(start, min(start + batch_size, len(items)))]
                   for start in range(0, len(items), batch_size)]
        futures = client.map(run_batch, [task] * len(batches), [shared] * len(batches), batches, pure=False)
        held = dict(zip((future.key for future in futures), batches))
        try:
            for future in as_completed(futures):
                try:
                    results = future.result()
                except KilledWorker as error:
                    files = ", ".join(str(readable(item) if readable else item) for _, item in held[future.key])
                    raise ClusterError(
                        f"Dask workers at {address} died running {files} on every try ({error}); the stage wrote "
                        "nothing. Retries: the scheduler's distributed.scheduler.allowed-failures") from None
                del held[future.key]
                yield from results
        finally:
            client.cancel(futures)


class _Connection:
    """A Client to `address`, or to a LocalCluster of `workers` processes for "local"; closed on exit."""

    def __init__(self, address: str, workers: int):
        from distributed import Client, LocalCluster

        self.cluster = None
        if address == CLUSTER_LOCAL:
            # Worker processes inherit this process's environment, so `import ser`'s CPU code paths hold there.
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=None)
            self.client = Client(self.cluster)
            return
        try:
            self.client = Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as error:
            raise ClusterError(f"cluster.address {address}: no Dask scheduler answered within {CONNECT_TIMEOUT_S} "
                               f"s ({error}); start one (docs/cluster.md) or set cluster.address to '' to run "
                               "on this machine") from None
        try:
            self.client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            self.client.close()
            raise ClusterError(f"cluster.address {address}: the scheduler has no worker after {WORKERS_TIMEOUT_S} "
                               "s; start some with `dask worker <address> --nthreads 1 --preload-nanny ser` "
                               "(docs/cluster.md)") from None

    def __enter__(self):
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def connect(address: str, workers: int) -> _Connection:
    return _Connection(address, workers)


# ------------------------------------------------------------------------------------------- the checks

def code_fingerprint() -> str:
    """SHA-256 of the `ser` package's source files, as this process imports them."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": sys.version.split()[0]}
    for name in NUMERIC_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return versions


def environment(path: str | None = None) -> dict:
    """What decides the bits a process computes, and whether it can read `path` (run on every worker)."""
    import numpy as np

    cpu_features = np._core._multiarray_umath.__cpu_features__
    disabled = os.environ.get("NPY_DISABLE_CPU_FEATURES", "").split()
    return {"code": code_fingerprint(), "libraries": _library_versions(),
            "code_paths": {name: os.environ.get(name) for name in CPU_CODE_PATHS},
            # numpy reads NPY_DISABLE_CPU_FEATURES when it loads: set after that, it names kernels still on.
            "numpy_kernels_on": sorted(name for name in disabled if cpu_features.get(name)),
            "readable": None if path is None else os.access(path, os.R_OK)}


def environment_problems(mine: dict, theirs: dict, path: str | None = None) -> list[str]:
    """How a worker's `environment` differs from this process's, as sentences (empty: none)."""
    problems = []
    if theirs["code"] != mine["code"]:
        problems.append(f"its ser code differs from the driver's ({Path(__file__).parent}); install the same "
                        "commit on every worker")
    changed = {name: (mine["libraries"][name], theirs["libraries"].get(name)) for name in mine["libraries"]
               if theirs["libraries"].get(name) != mine["libraries"][name]}
    if changed:
        problems.append("its libraries differ: " + ", ".join(f"{name} {other} (driver: {own})"
                                                             for name, (own, other) in changed.items()))
    paths = {name: value for name, value in theirs["code_paths"].items() if value != mine["code_paths"][name]}
    if paths or theirs["numpy_kernels_on"]:
        late = theirs["numpy_kernels_on"]
        problems.append(f"its CPU code paths are not ser's ({', '.join(f'{k}={v}' for k, v in paths.items())}"
                        f"{'; numpy loaded before them: ' + ' '.join(late) if late else ''}): start it with "
                        "`dask worker ... --preload-nanny ser`, whose worker processes then inherit them "
                        "(src/ser/__init__.py)")
    if path is not None and not theirs["readable"]:
        problems.append(f"it cannot read {path}: workers read the audio where the driver does; mount the "
                        "workspace (its data/) at the same path on every worker")
    return problems


def check_workers(client, path: str | None = None) -> None:
    """Refuse a cluster whose workers would compute other bits than this process, or cannot read `path`."""
    mine = environment()
    report = client.run(environment, path)
    problems = [f"worker {worker}: {problem}" for worker, theirs in sorted(report.items())
                for problem in environment_problems(mine, theirs, path)]
    if problems:
        raise ClusterError("the Dask workers cannot compute what this machine would:\n" + "\n".join(problems))
