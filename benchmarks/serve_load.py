"""`ser serve` under load: concurrent clients uploading clips through the page's HTTP API.

    python benchmarks/serve_load.py [--model models] [--clients 16] [--uploads 10] [--clips 16]
                                    [--out reports/benchmarks/serve_load.json] CLIP_OR_FOLDER...

Starts the real server (`ser serve`, a subprocess on a free port of 127.0.0.1) and waits until it
answers. A warm-up pass uploads each clip once, alone: the first upload loads Silero VAD and the feature
extractor (its time is reported apart), and each answer becomes that clip's reference. Then `--clients`
threads, each its own `gradio_client.Client` (a browser tab's session), upload `--uploads` clips each,
round robin over the clips, through the `/predict` endpoint that docs/serving.md documents. Latency is
one upload's, from the call to its answer: the file's upload, the wait in the server's queue (it predicts
one at a time) and the prediction.

Every answer is checked, not its status alone: it must carry a probability for each of the model's
emotions, summing to 1, whose top is the answer's label, and be the clip's reference answer (the model
is deterministic, so a different one is another upload's answer or a corrupted one). A failed or
timed-out upload is counted and named; the report holds p50, p95 and max latency, the throughput and the
machine. `tests/test_serve_load.py` runs the same load on a synthetic model and fails on any failure.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

API_NAME = "/predict"
PROBABILITY_SUM_TOLERANCE = 1e-4
SAME_ANSWER_TOLERANCE = 1e-6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `ser serve`: its URL, and what it has printed (for a failure's message)."""

    def __init__(self, url: str, process: subprocess.Popen, log):
        self.url, self.process, self.log = url, process, log

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-4000:]

    def state(self) -> str:
        """Whether it still runs, and its output's tail where it does not."""
        status = self.process.poll()
        return "still running" if status is None else f"exited with status {status}:\n{self.output()}"


@contextmanager
def running_server(model_dir: str | Path, *options: str, start_timeout: float = 180.0):
    """`ser serve --model model_dir *options` on a free port of 127.0.0.1, as a Server, while it runs;
    RuntimeError with the server's own output if it exits or does not answer within `start_timeout` s."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen([sys.executable, "-m", "ser.cli", "serve", "--model", str(model_dir),
                                   "--port", str(port), *options], stdout=log, stderr=subprocess.STDOUT, env=env)
        output = Server(url, server, log).output
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"ser serve exited with status {server.returncode}:\n{output()}")
                try:
                    if httpx.get(url + "gradio_api/info", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ser serve did not answer on {url} within {start_timeout:.0f} s:\n{output()}")
                time.sleep(0.25)
            yield Server(url, server, log)
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def client(url: str):
    from gradio_client import Client

    # analytics off: the client otherwise reports to Gradio's servers, which an offline machine cannot reach
    return Client(url, verbose=False, analytics_enabled=False)


def probabilities_of(answer, labels: list[str]) -> dict[str, float]:
    """The probabilities an answer of `/predict` carries; ValueError saying what is wrong with it."""
    label, summary = answer
    if not isinstance(label, dict) or not label.get("confidences"):
        raise ValueError(f"no probabilities in the answer (summary: {summary!r})")
    probabilities = {item["label"]: item["confidence"] for item in label["confidences"]}
    if sorted(probabilities) != sorted(labels):
        raise ValueError(f"probabilities for {sorted(probabilities)}, not the model's {sorted(labels)}")
    values = np.array(list(probabilities.values()), dtype=float)
    if not (np.isfinite(values).all() and (values >= 0).all() and abs(values.sum() - 1) < PROBABILITY_SUM_TOLERANCE):
        raise ValueError(f"probabilities are not a distribution: {probabilities}")
    top = max(probabilities, key=probabilities.get)
    if label.get("label") != top or not summary.startswith(f"**{top}**"):
        raise ValueError(f"the answer names {label.get('label')!r} ({summary!r}), the top probability is {top!r}")
    return probabilities


def upload(session, clip: Path, labels: list[str], timeout: float) -> tuple[float, dict[str, float]]:
    """(seconds from the call to the checked answer, its probabilities); the error of a failed upload."""
    from gradio_client import handle_file

    started = time.perf_counter()
    answer = session.submit(handle_file(str(clip)), api_name=API_NAME).result(timeout=timeout)
    seconds = time.perf_counter() - started
    return seconds, probabilities_of(answer, labels)


def warm_up(url: str, clips: list[Path], labels: list[str], timeout: float) -> tuple[list[float], dict]:
    """(each upload's seconds, each clip's reference probabilities), one upload at a time: the first
    upload's time is the server's warm-up, the others' an upload's latency with no queue."""
    session = client(url)
    try:
        references, times = {}, []
        for clip in clips:
            seconds, references[clip] = upload(session, clip, labels, timeout)
            times.append(seconds)
        return times, references
    finally:
        session.close()


def run_load(url: str, clips: list[Path], labels: list[str], references: dict, clients: int = 16,
             uploads: int = 10, timeout: float = 120.0) -> dict:
    """`clients` concurrent sessions of `uploads` uploads each; every answer checked against its clip's
    reference. Returns the latencies of the good answers, the failures (named) and the wall time."""
    latencies, failures, lock = [], [], threading.Lock()
    # Every session starts together, so the queue holds `clients` uploads from the first.
    gate = threading.Barrier(clients)

    def one_client(number: int) -> None:
        try:
            session = client(url)
        except Exception as error:
            with lock:
                failures.extend(f"client {number}, upload {k}: no session: {error!r}" for k in range(uploads))
            gate.abort()
            return
        try:
            gate.wait(timeout=timeout)
            for k in range(uploads):
                clip = clips[(number * uploads + k) % len(clips)]
                try:
                    seconds, probabilities = upload(session, clip, labels, timeout)
                    worst = max(abs(probabilities[e] - references[clip][e]) for e in labels)
                    if worst > SAME_ANSWER_TOLERANCE:
                        raise ValueError(f"not {clip.name}'s answer (off by {worst:.2e}): {probabilities}")
                except Exception as error:  # a timeout, an HTTP or app error, a wrong answer: all failures
                    with lock:
                        failures.append(f"client {number}, upload {k} ({clip.name}): {type(error).__name__}: "
                                        f"{error}")
                    continue
                with lock:
                    latencies.append(seconds)
        except threading.BrokenBarrierError:
            with lock:
                failures.extend(f"client {number}, upload {k}: the other sessions never started"
                                for k in range(uploads))
        finally:
            session.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one_client, range(clients)))
    return {"latencies": latencies, "failures": failures, "wall_seconds": time.perf_counter() - started}


def summary(load: dict, requests: int) -> dict:
    latencies = np.array(load["latencies"])
    latency = {"p50": None, "p95": None, "max": None, "mean": None}
    if len(latencies):
        latency = {"p50": np.percentile(latencies, 50), "p95": np.percentile(latencies, 95),
                   "max": latencies.max(), "mean": latencies.mean()}
        latency = {key: round(float(value), 3) for key, value in latency.items()}
    return {"requests": requests, "answered": len(latencies), "failed": len(load["failures"]),
            "latency_seconds": latency,
            "wall_seconds": round(load["wall_seconds"], 2),
            "throughput_per_second": round(len(latencies) / load["wall_seconds"], 3),
            "failures": load["failures"][:20]}


def pick_clips(sources: list[str], count: int) -> list[Path]:
    """Files as given; a folder's audio files spread over it (every actor's, for a corpus folder)."""
    from ser.predict import audio_files

    clips = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = audio_files(path)
            clips.extend(found[:: max(1, math.ceil(len(found) / count))][:count])
        else:
            clips.append(path)
    return clips


def main():
    import gradio
    import soundfile as sf

    from ser.checkpoint import model_dirs, read_card
    from ser.evaluation import current_commit, describe_machine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="+", help="audio files, or folders whose audio files are sampled")
    parser.add_argument("--model", default="models")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--uploads", type=int, default=10, help="uploads per client")
    parser.add_argument("--clips", dest="count", type=int, default=16, help="clips taken from each folder")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one upload may take")
    parser.add_argument("--device", default="cpu", help="the server's --device")
    parser.add_argument("--out", default="reports/benchmarks/serve_load.json")
    args = parser.parse_args()

    clips = pick_clips(args.clips, args.count)
    if not clips:
        parser.error("no audio files among the clips given")
    card = read_card(model_dirs(args.model)[0])
    labels, arch = card["labels"], card["arch"]
    durations = [sf.info(str(clip)).duration for clip in clips]
    load_average = os.getloadavg()  # others' work on the machine slows the server too
    started = time.perf_counter()
    with running_server(args.model, "--device", args.device) as server:
        startup = time.perf_counter() - started
        alone, references = warm_up(server.url, clips, labels, args.timeout)
        load = run_load(server.url, clips, labels, references, args.clients, args.uploads, args.timeout)
        state = server.state()
    report = {"machine": describe_machine(args.device), "commit": current_commit(), "model": str(args.model),
              "arch": arch, "runs": len(model_dirs(args.model)), "device": args.device,
              "gradio": gradio.__version__, "clients": args.clients, "uploads_per_client": args.uploads,
              "clips": [str(clip) for clip in clips],
              "clip_seconds": {"min": round(min(durations), 2), "max": round(max(durations), 2),
                               "mean": round(float(np.mean(durations)), 2)},
              "server_startup_seconds": round(startup, 2), "first_upload_seconds": round(alone[0], 3),
              "alone_latency_seconds_median": round(float(np.median(alone[1:] or alone)), 3),
              "load_average_before": [round(value, 2) for value in load_average],
              "command": " ".join(["python", *sys.argv]),
              **summary(load, args.clients * args.uploads)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    latency = report["latency_seconds"]
    print(f"{report['machine']}: arch {arch}, {args.clients} clients x {args.uploads} uploads of {len(clips)} clips: "
          f"{report['answered']} answered, {report['failed']} failed; latency p50 {latency['p50']} s, "
          f"p95 {latency['p95']} s, max {latency['max']} s; {report['throughput_per_second']} uploads/s; "
          f"first upload {report['first_upload_seconds']} s, one alone {report['alone_latency_seconds_median']} s; "
          f"wrote {args.out}")
    for failure in load["failures"][:20]:
        print(f"failed: {failure}", file=sys.stderr)
    if load["failures"]:
        print(f"the server, after the load: {state}", file=sys.stderr)
    return 1 if load["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
