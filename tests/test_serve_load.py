"""`ser serve` through its HTTP API, as a subprocess on 127.0.0.1: 16 concurrent clients of 10 uploads each,
the upload limits (bytes and seconds), and the examples of docs/serving.md run as written."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from ser.cli import main
from ser.corpus import EMOTIONS
from synthetic import voice

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("serve_load", ROOT / "benchmarks" / "serve_load.py")
serve_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serve_load)  # the benchmark's own load: the test and the figures share it

LABELS = list(EMOTIONS)
RATE = 16000
# Small limits, so that small files cross them: 209715 bytes, and 2 s.
MAX_UPLOAD_MB, MAX_SECONDS = 0.2, 2
CLIENTS, UPLOADS = 16, 10
# Generous for CI's 2 shared cores, where the 16 sessions and the server share them: alone, one upload
# of these clips takes about 0.3 s, so the last of 16 in the queue waits about 5 s.
UPLOAD_TIMEOUT = 60.0
LOAD_TIMEOUT = 240.0
DOC = ROOT / "docs" / "serving.md"
DOC_URL = "http://127.0.0.1:7860"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve_clips")
    for seed in (0, 1):  # two voices, so that an answer sent to the wrong upload shows
        sf.write(folder / f"voice{seed}.wav", voice(1.5, RATE, seed=seed), RATE, subtype="PCM_16")  # 48 KB
    # Under the byte limit (96 KB), over the seconds one.
    sf.write(folder / "three_seconds.wav", voice(3.0, RATE), RATE, subtype="PCM_16")
    # Under the seconds limit, over the byte one (576 KB): 48 kHz stereo float.
    signal = voice(1.5, 48000)
    sf.write(folder / "large.wav", np.stack([signal, signal], axis=1), 48000, subtype="FLOAT")
    # Three seconds that decoding would refuse (NaN samples): the header's length is read before it is decoded.
    sf.write(folder / "three_seconds_nan.wav", np.full(3 * RATE, np.nan, dtype=np.float32), RATE, subtype="FLOAT")
    return folder


@pytest.fixture(scope="module")
def server(model_dir):
    with serve_load.running_server(model_dir, "--device", "cpu", "--max-upload-mb", str(MAX_UPLOAD_MB),
                                   "--max-seconds", str(MAX_SECONDS)) as running:
        yield running


@pytest.fixture(scope="module")
def references(server, clips):
    """Each load clip's answer alone (the first upload also warms the server up)."""
    _, answers = serve_load.warm_up(server.url, load_clips(clips), LABELS, timeout=180.0)
    return answers


def load_clips(clips) -> list[Path]:
    return [clips / "voice0.wav", clips / "voice1.wav"]


def test_sixteen_clients_of_ten_uploads_are_all_answered_with_their_probabilities(server, clips, references,
                                                                                  record_property):
    load = serve_load.run_load(server.url, load_clips(clips), LABELS, references, clients=CLIENTS, uploads=UPLOADS,
                               timeout=UPLOAD_TIMEOUT)
    report = serve_load.summary(load, CLIENTS * UPLOADS)
    latency = report["latency_seconds"]
    for key in ("p50", "p95", "max"):
        record_property(f"latency_{key}_seconds", latency[key])
    print(f"{CLIENTS} clients x {UPLOADS} uploads: p50 {latency['p50']} s, p95 {latency['p95']} s, "
          f"max {latency['max']} s, {report['throughput_per_second']} uploads/s over {report['wall_seconds']} s")
    assert not load["failures"], (f"{len(load['failures'])} failed:\n" + "\n".join(load["failures"][:20])
                                  + f"\nthe server: {server.state()}")
    assert report["answered"] == CLIENTS * UPLOADS
    assert load["wall_seconds"] < LOAD_TIMEOUT
    assert latency["max"] < UPLOAD_TIMEOUT


def test_every_answer_is_checked_not_just_its_status():
    answer = ({"label": "calm", "confidences": [{"label": e, "confidence": 1 / 8} for e in LABELS]}, "**calm** (...)")
    with pytest.raises(ValueError, match="no probabilities"):
        serve_load.probabilities_of((None, "**no speech detected** in this 1.5 s recording"), LABELS)
    with pytest.raises(ValueError, match="not the model's"):
        serve_load.probabilities_of(({**answer[0], "confidences": answer[0]["confidences"][:7]}, answer[1]), LABELS)
    skewed = [{"label": e, "confidence": 0.2} for e in LABELS]
    with pytest.raises(ValueError, match="not a distribution"):
        serve_load.probabilities_of(({"label": "neutral", "confidences": skewed}, "**neutral**"), LABELS)
    top = [{"label": e, "confidence": 0.3 if e == "sad" else 0.1} for e in LABELS]
    with pytest.raises(ValueError, match="top probability is 'sad'"):
        serve_load.probabilities_of(({"label": "calm", "confidences": top}, "**calm**"), LABELS)


def test_an_upload_over_the_byte_limit_is_refused_naming_the_limit(server, clips):
    from gradio_client import handle_file

    limit = int(MAX_UPLOAD_MB * 1024 * 1024)
    with open(clips / "large.wav", "rb") as file:
        response = httpx.post(server.url + "gradio_api/upload", files={"files": ("large.wav", file, "audio/wav")},
                              timeout=60)
    assert response.status_code == 413
    assert f"maximum allowed size of {limit} bytes" in response.text
    # gradio_client reads the limit from the page and refuses before sending.
    session = serve_load.client(server.url)
    try:
        with pytest.raises(ValueError, match=f"exceeds the maximum file size of {limit} bytes"):
            session.predict(handle_file(str(clips / "large.wav")), api_name="/predict")
    finally:
        session.close()


@pytest.mark.parametrize("name", ["three_seconds.wav", "three_seconds_nan.wav"])
def test_a_recording_over_the_seconds_limit_is_refused_naming_the_limit(server, clips, name):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    session = serve_load.client(server.url)
    try:
        with pytest.raises(AppError) as refused:
            session.predict(handle_file(str(clips / name)), api_name="/predict")
    finally:
        session.close()
    message = str(refused.value)
    assert "This recording is 3.0 s long" in message
    assert f"limit of {MAX_SECONDS} s of audio (ser serve --max-seconds)" in message
    assert "NaN" not in message  # judged by its header: never decoded


def test_header_seconds_reads_the_length_without_decoding(tmp_path):
    from ser.webapp import header_seconds

    sf.write(tmp_path / "a.flac", np.zeros(int(2.5 * 8000), dtype=np.float32), 8000)
    sf.write(tmp_path / "b.ogg", np.zeros(3 * 22050, dtype=np.float32), 22050, format="OGG", subtype="VORBIS")
    (tmp_path / "garbage.wav").write_bytes(b"this is not audio")
    assert header_seconds(tmp_path / "a.flac") == pytest.approx(2.5)
    assert header_seconds(tmp_path / "b.ogg") == pytest.approx(3.0, abs=0.01)
    assert header_seconds(tmp_path / "garbage.wav") is None  # left to the predictor to name


def test_a_file_past_the_byte_limit_that_skipped_the_upload_route_is_refused_too(model_dir, clips):
    """Gradio guards its upload route; the event checks the size too, for a file that came another way."""
    import gradio as gr

    from ser.predict import Predictor
    from ser.webapp import build_app

    def event(max_upload_mb):
        app = build_app(Predictor(model_dir, device="cpu"), max_upload_mb=max_upload_mb, max_seconds=None)
        return next(block.fn for block in app.fns.values() if block.api_name == "predict")

    refused = r"over this server's limit of 0.01 MB \(10485 bytes; ser serve --max-upload-mb\)"
    with pytest.raises(gr.Error, match=refused):
        event(0.01)(str(clips / "voice0.wav"))  # 48 KB
    probabilities, summary = event(0.1)(str(clips / "voice0.wav"))
    assert sorted(probabilities) == sorted(LABELS) and summary.startswith("**")


def test_serve_passes_its_limits_on_and_zero_lifts_one(monkeypatch, model_dir, capsys):
    import ser.webapp
    from ser.webapp import MAX_SECONDS as DEFAULT_SECONDS, MAX_UPLOAD_MB as DEFAULT_MB

    calls = []
    monkeypatch.setattr(ser.webapp, "serve", lambda *args, **kwargs: calls.append(kwargs))
    assert main(["serve", "--model", str(model_dir)]) == 0
    assert main(["serve", "--model", str(model_dir), "--max-upload-mb", "5", "--max-seconds", "0"]) == 0
    assert "max_upload_mb" not in calls[0] and "max_seconds" not in calls[0]  # serve's own defaults
    assert calls[1]["max_upload_mb"] == 5 and calls[1]["max_seconds"] is None
    with pytest.raises(SystemExit) as usage:
        main(["serve", "--max-seconds", "-1"])
    assert usage.value.code == 2 and "give a number >= 0" in capsys.readouterr().err
    # The help names the defaults serve uses.
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    options = " ".join(capsys.readouterr().out.split("options:")[1].split())
    upload_help, seconds_help = options.split("--max-upload-mb MB")[1].split("--max-seconds S")
    assert f"(default: {DEFAULT_MB:g})" in upload_help and f"(default: {DEFAULT_SECONDS:g})" in seconds_help


def documented(language: str, url: str) -> str:
    """The first `language` code block of docs/serving.md's "HTTP API" section, calling `url` instead of the
    default address (the only change)."""
    section = DOC.read_text().split("## HTTP API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)
    assert blocks, f"{DOC}: no {language} example under 'HTTP API'"
    assert DOC_URL in blocks[0], f"the {language} example no longer calls {DOC_URL}"
    return blocks[0].replace(DOC_URL, url.rstrip("/"))


@pytest.fixture
def example_dir(clips, tmp_path):
    shutil.copy(clips / "voice0.wav", tmp_path / "clip.wav")
    return tmp_path


def test_the_documented_gradio_client_example_runs_as_written(server, example_dir, references, clips):
    shown = subprocess.run([sys.executable, "-c", documented("python", server.url)], cwd=example_dir,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    summary, *rows = shown.stdout.strip().splitlines()
    printed = dict(row.split("\t") for row in rows)
    expected = references[clips / "voice0.wav"]
    assert sorted(printed) == sorted(LABELS)
    assert all(abs(float(printed[e]) - expected[e]) < 1e-4 for e in LABELS)
    assert summary.startswith(f"**{max(expected, key=expected.get)}**")


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_documented_curl_example_runs_as_written(server, example_dir, references, clips):
    shown = subprocess.run(["bash", "-euo", "pipefail", "-c", documented("bash", server.url)], cwd=example_dir,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "event: complete" in shown.stdout, shown.stdout
    data = next(line for line in shown.stdout.splitlines() if line.startswith("data: "))
    probabilities = serve_load.probabilities_of(json.loads(data[len("data: "):]), LABELS)
    expected = references[clips / "voice0.wav"]
    assert all(abs(probabilities[e] - expected[e]) < 1e-6 for e in LABELS)
