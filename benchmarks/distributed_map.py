"""augment and features on today's process pool and on Dask workers, side by side on this machine.

    python benchmarks/distributed_map.py [--clips 48] [--raw ../shared/ravdess]
                                         [--out reports/benchmarks/distributed_map.json]

Reads `--clips` RAVDESS files in place (spread over the actors; nothing is copied into the repository) and runs
the augment stage's and the features stage's map over them (params.yaml's augment section and the default arch's
recipe, Whisper-base) on six engines, each a full call of `augment_corpus` / `compute_feature_cache`:

- pool 1, pool 2: cluster.address "" (today's path: this process, or a pool of 2 worker processes);
- dask-local 1, 2: cluster.address "local" (a LocalCluster started and stopped inside the call);
- dask-running 1, 2: a Dask cluster started before the call and warmed (one clip augmented on it: libraries
  imported, librosa's numba functions compiled), as a cluster that outlives the stage is: what a `tcp://`
  address costs. This process is warmed the same way first, as today's pool forks it.

It also times the engines' overhead per task (a task that does nothing, one item per task), and projects the
hours of 100 hours of audio on N machines like this one from the dask-running 2-worker rates. Every output is
checked to be the same bits as pool 1's.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import hashlib
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import soundfile as sf

from ser.augment import augment_corpus, clips_and_copies
from ser.cluster import map_files
from ser.config import load_params
from ser.features import compute_feature_cache, make_recipe
from ser.io import write_json

ENGINES = [("pool", 1), ("pool", 2), ("dask-local", 1), ("dask-local", 2), ("dask-running", 1), ("dask-running", 2)]
HOURS = 100
MACHINES = [1, 2, 4, 8, 16, 32, 64]
NOOP_TASKS = 400


def noop(payload, item):
    return item


def digest(folder: Path) -> str:
    hashed = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        hashed.update(path.name.encode() + path.read_bytes())
    return hashed.hexdigest()


def warm(manifest, raw, params, cluster=None):
    """One clip augmented where the tasks run (in this process, which today's pool forks, or on every worker of a
    running cluster): the libraries imported and librosa's numba functions compiled, as in a process or a
    cluster that has run stages before. A model still loads once per worker per stage, in the timed runs."""
    from ser.augment import augment_clip

    row = manifest.iloc[0]
    clip = (row.clip_id, str(raw / row.path))
    if cluster is None:
        augment_clip((params.audio.sample_rate, params.augment), clip)
        return
    from distributed import Client
    with Client(cluster.scheduler_address) as client:
        client.run(lambda: augment_clip((params.audio.sample_rate, params.augment), clip) and None)


def running_cluster(workers: int):
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--raw", default="../shared/ravdess")
    parser.add_argument("--out", default="reports/benchmarks/distributed_map.json")
    args = parser.parse_args()
    params = load_params()
    raw = Path(args.raw).resolve()
    found = sorted(raw.glob("Audio_Speech_Actors_01-24/Actor_*/*.*"))
    chosen = found[:: max(1, len(found) // args.clips)][: args.clips]
    manifest = pd.DataFrame({"clip_id": [p.stem for p in chosen], "path": [str(p.relative_to(raw)) for p in chosen]})
    audio_seconds = sum(sf.info(str(p)).duration for p in chosen)
    for path in chosen:  # every engine reads from the page cache
        path.read_bytes()
    _, arch = params.arch
    rate = params.audio.sample_rate

    warm(manifest, raw, params)
    work = Path(tempfile.mkdtemp(prefix="distributed_map."))
    results, overhead, digests = [], {}, {}
    try:
        for engine, workers in ENGINES:
            cluster = running_cluster(workers) if engine == "dask-running" else None
            address = cluster.scheduler_address if cluster else {"pool": "", "dask-local": "local"}[engine]
            if cluster:
                warm(manifest, raw, params, cluster)
            try:
                out = work / f"{engine}{workers}"
                started = time.perf_counter()
                augment_corpus(manifest, raw, out / "augmented", rate, params.augment, workers=workers,
                               progress=False, address=address)
                augment_s = time.perf_counter() - started
                items = clips_and_copies(manifest, raw, out / "augmented", with_copies=False)
                started = time.perf_counter()
                compute_feature_cache(make_recipe(arch.features, rate), items, out / "features", workers=workers,
                                      progress=False, address=address)
                features_s = time.perf_counter() - started
                if engine != "dask-local":
                    started = time.perf_counter()
                    for _ in map_files(noop, None, list(range(NOOP_TASKS)), workers=workers, address=address,
                                       progress=False, batch_size=1):
                        pass
                    overhead[f"{engine} {workers}"] = (time.perf_counter() - started) / NOOP_TASKS
            finally:
                if cluster is not None:
                    cluster.close()
            digests[(engine, workers)] = (digest(out / "augmented"), digest(out / "features"))
            row = {"engine": engine, "workers": workers, "clips": len(chosen),
                   "augment_s": round(augment_s, 2), "augment_clips_per_s": round(len(chosen) / augment_s, 2),
                   "features_s": round(features_s, 2), "features_clips_per_s": round(len(chosen) / features_s, 2),
                   "same_bits_as_pool_1": digests[(engine, workers)] == digests[("pool", 1)]}
            results.append(row)
            print(row, flush=True)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def rate_of(engine, workers, stage):
        return next(r[f"{stage}_clips_per_s"] for r in results if (r["engine"], r["workers"]) == (engine, workers))

    clip_seconds = audio_seconds / len(chosen)
    total_clips = HOURS * 3600 / clip_seconds
    projection = []
    for machines in MACHINES:
        hours = {stage: total_clips / (machines * rate_of("dask-running", 2, stage)) / 3600
                 for stage in ("augment", "features")}
        # The scheduler hands out one task at a time: batches of 4 (augment) and 8 (features) clips.
        ceiling = {stage: total_clips / (batch / overhead["dask-running 2"]) / 3600
                   for stage, batch in (("augment", 4), ("features", 8))}
        projection.append({"machines": machines, "cores": 2 * machines,
                           **{f"{stage}_hours": round(max(hours[stage], ceiling[stage]), 2) for stage in hours}})
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
                   f"({open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()})",
        "load_average_at_end": os.getloadavg(),
        "clips": len(chosen), "audio_seconds": round(audio_seconds, 1), "recipe": arch.features,
        "augment_copies": params.augment.copies,
        "runs": results,
        "overhead_s_per_task": {key: round(value, 5) for key, value in overhead.items()},
        "pool_vs_dask_running_2": {stage: round(rate_of("dask-running", 2, stage) / rate_of("pool", 2, stage), 3)
                                   for stage in ("augment", "features")},
        "pool_vs_dask_local_2": {stage: round(rate_of("dask-local", 2, stage) / rate_of("pool", 2, stage), 3)
                                 for stage in ("augment", "features")},
        "projection_100_hours": {"clip_seconds": round(clip_seconds, 2), "clips": round(total_clips),
                                 "per_machine": "2 workers like this one, dask-running rates (start-up included)",
                                 "rows": projection},
    }
    write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
