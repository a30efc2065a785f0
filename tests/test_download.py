"""Stage `download`, without internet: a local HTTP server stands in for Zenodo."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
import soundfile as sf

from ser.corpus import ARCHIVE_FOLDERS, make_name
from ser.download import DownloadError, fetch_corpus

REPO = Path(__file__).resolve().parents[1]
SPEECH, SONG = ARCHIVE_FOLDERS["speech"], ARCHIVE_FOLDERS["song"]


# --- a stand-in for Zenodo --------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server: FileServer = self.server
        first = all(path != self.path for path, _ in server.seen)
        wanted = self.headers.get("Range")
        server.seen.append((self.path, wanted))
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if wanted and server.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        cut = server.cut_after.get(self.path) if first else None
        if cut is not None:  # promise everything, send `cut` bytes, hang up
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(payload)


class FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}       # URL path -> bytes
        self.seen: list[tuple[str, str | None]] = []  # (path, Range header) of every request
        self.cut_after: dict[str, int] = {}     # path -> bytes sent on its first request
        self.honour_range = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/files/"

    def publish(self, name: str, body: bytes) -> str:
        self.files[f"/files/{name}"] = body
        return f"/files/{name}"


@pytest.fixture
def server():
    srv = FileServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


# --- tiny corpus ------------------------------------------------------------------------------

def audio_bytes(seed: int, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, 1600).astype("float32")
    sf.write(buf, noise, 16000, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def clips(channel: int, actor: int, ext: str = ".wav") -> dict[str, bytes]:
    """{"Actor_NN/<RAVDESS name>": bytes} for three clips."""
    fmt = "FLAC" if ext == ".flac" else "WAV"
    return {f"Actor_{actor:02d}/{make_name(channel, emotion, 1, 1, 1, actor, ext)}": audio_bytes(emotion, fmt)
            for emotion in (1, 3, 5)}


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


@pytest.fixture
def archives():
    """Speech zip with Actor_01/ at its root (like the real one), song zip with its folder nested."""
    speech, song = clips(1, 1), clips(2, 2)
    return {
        f"{SPEECH}.zip": (make_zip(speech), speech),
        f"{SONG}.zip": (make_zip({f"{SONG}/{k}": v for k, v in song.items()}), song),
    }


def fetch(server, tmp_path, registry, **kw):
    kw.setdefault("retries", 0)
    return fetch_corpus("zenodo", tmp_path / "raw", zenodo_url=server.base_url, archives=registry,
                        downloads_dir=tmp_path / "downloads", progress=False, **kw)


def assert_extracted(dest: Path, archives) -> None:
    for name, (_, members) in archives.items():
        folder = dest / name.removesuffix(".zip")
        for member, data in members.items():
            assert (folder / member).read_bytes() == data
        assert len([p for p in folder.rglob("*") if p.is_file()]) == len(members)


# --- Zenodo -----------------------------------------------------------------------------------

def test_zenodo_extracts_both_layouts(server, tmp_path, archives):
    for name, (body, _) in archives.items():
        server.publish(name, body)
    used = fetch(server, tmp_path, {name: md5(body) for name, (body, _) in archives.items()})
    assert used["source"] == "zenodo" and used["location"] == server.base_url and used["files"] == 6
    assert_extracted(tmp_path / "raw", archives)
    assert not list((tmp_path / "downloads").glob("*.part"))
    # A second run finds the verified zips and downloads nothing.
    before = len(server.seen)
    fetch(server, tmp_path, {name: md5(body) for name, (body, _) in archives.items()})
    assert len(server.seen) == before


def test_md5_mismatch_leaves_nothing(server, tmp_path, archives):
    name, (body, _) = next(iter(archives.items()))
    server.publish(name, body)
    wrong = "md5:" + "0" * 32
    with pytest.raises(DownloadError) as err:
        fetch(server, tmp_path, {name: wrong})
    message = str(err.value)
    assert wrong in message and md5(body) in message and "re-run" in message
    assert not (tmp_path / "raw").exists()
    assert not (tmp_path / "downloads" / f"{name}.part").exists()
    assert not (tmp_path / "downloads" / name).exists()


def test_cut_transfer_resumes_from_part(server, tmp_path, archives):
    name, (body, _) = next(iter(archives.items()))
    path = server.publish(name, body)
    cut = len(body) // 2
    server.cut_after[path] = cut
    registry = {name: md5(body)}
    part = tmp_path / "downloads" / f"{name}.part"

    with pytest.raises(DownloadError, match="interrupted"):
        fetch(server, tmp_path, registry)
    assert part.stat().st_size == cut
    assert not (tmp_path / "raw").exists()

    fetch(server, tmp_path, registry)
    assert server.seen == [(path, None), (path, f"bytes={cut}-")]
    assert not part.exists()
    assert_extracted(tmp_path / "raw", {name: archives[name]})


def test_pooch_retry_resumes_within_one_call(server, tmp_path, archives):
    name, (body, _) = next(iter(archives.items()))
    path = server.publish(name, body)
    server.cut_after[path] = 1000
    fetch(server, tmp_path, {name: md5(body)}, retries=1)  # pooch sleeps 1 s before its retry
    assert server.seen == [(path, None), (path, "bytes=1000-")]
    assert_extracted(tmp_path / "raw", {name: archives[name]})


def test_server_ignoring_range_restarts_from_zero(server, tmp_path, archives):
    name, (body, _) = next(iter(archives.items()))
    server.publish(name, body)
    server.honour_range = False
    part = tmp_path / "downloads" / f"{name}.part"
    part.parent.mkdir()
    stale = b"stale bytes that must not end up in the zip"
    part.write_bytes(stale)
    fetch(server, tmp_path, {name: md5(body)})
    assert server.seen == [(f"/files/{name}", f"bytes={len(stale)}-")]  # answered 200, whole file
    assert_extracted(tmp_path / "raw", {name: archives[name]})


def test_complete_part_answered_416(server, tmp_path, archives):
    name, (body, _) = next(iter(archives.items()))
    path = server.publish(name, body)
    part = tmp_path / "downloads" / f"{name}.part"
    part.parent.mkdir()
    part.write_bytes(body)  # e.g. killed between the last byte and the move
    fetch(server, tmp_path, {name: md5(body)})
    assert server.seen == [(path, f"bytes={len(body)}-")]
    assert_extracted(tmp_path / "raw", {name: archives[name]})


def test_404_names_the_url(server, tmp_path):
    name = f"{SPEECH}.zip"
    with pytest.raises(DownloadError) as err:
        fetch(server, tmp_path, {name: "md5:" + "0" * 32}, retries=3)  # 4xx is not retried
    assert server.base_url + name in str(err.value) and "404" in str(err.value)
    assert "local mirror" in str(err.value)
    assert len(server.seen) == 1
    assert not (tmp_path / "raw").exists()


def test_unreachable_server(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/files/"
    with pytest.raises(DownloadError, match="could not reach .*check the network"):
        fetch_corpus("zenodo", tmp_path / "raw", zenodo_url=url, archives={"a.zip": "md5:" + "0" * 32},
                     downloads_dir=tmp_path / "downloads", retries=0, progress=False)


def test_unsafe_member_is_refused(server, tmp_path):
    body = make_zip({"Actor_01/ok.wav": b"x", "../escape.wav": b"x"})
    name = f"{SPEECH}.zip"
    server.publish(name, body)
    with pytest.raises(DownloadError, match="unsafe path '../escape.wav'"):
        fetch(server, tmp_path, {name: md5(body)})
    assert not (tmp_path / "raw").exists() and not (tmp_path / "escape.wav").exists()


# --- mirror -----------------------------------------------------------------------------------

def make_mirror(root: Path, sums: bool = True) -> dict[str, bytes]:
    files = {f"{SPEECH}/{k}": v for k, v in clips(1, 1, ".flac").items()}
    files |= {f"{SONG}/{k}": v for k, v in clips(2, 2, ".flac").items()}
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    (root / "README.txt").write_text("not audio")
    if sums:
        (root / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(d).hexdigest()}  ./{r}\n"
                                                 for r, d in files.items()))
    return files


def test_mirror_copies_verified_audio(tmp_path, monkeypatch):
    files = make_mirror(tmp_path / "mirror")
    monkeypatch.chdir(tmp_path)  # a relative source is taken from the working directory
    used = fetch_corpus("mirror", Path("raw"), zenodo_url="unused", archives={}, downloads_dir=Path("dl"))
    assert used == {"source": "mirror", "location": "mirror",
                    "folders": [SPEECH, SONG], "verified": 6, "files": 6}
    for relative, data in files.items():
        assert (tmp_path / "raw" / relative).read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted([SPEECH, SONG])


def test_mirror_without_sums(tmp_path):
    make_mirror(tmp_path / "mirror", sums=False)
    used = fetch_corpus(str(tmp_path / "mirror"), tmp_path / "raw", zenodo_url="", archives={},
                        downloads_dir=tmp_path / "dl")
    assert used["verified"] == 0 and used["files"] == 6


def test_mirror_corruption_is_named(tmp_path):
    files = make_mirror(tmp_path / "mirror")
    bad, gone = list(files)[1], list(files)[4]
    (tmp_path / "mirror" / bad).write_bytes(b"corrupt")
    (tmp_path / "mirror" / gone).unlink()
    with pytest.raises(DownloadError) as err:
        fetch_corpus(str(tmp_path / "mirror"), tmp_path / "raw", zenodo_url="", archives={},
                     downloads_dir=tmp_path / "dl")
    message = str(err.value)
    assert f"./{bad} (sha256" in message and f"./{gone} (missing)" in message
    assert message.startswith("2 of 6 files")
    assert not (tmp_path / "raw").exists()


def test_mirror_missing_or_empty(tmp_path):
    with pytest.raises(DownloadError, match=r"nowhere.*does not exist.*download.source: zenodo"):
        fetch_corpus(str(tmp_path / "nowhere"), tmp_path / "raw", zenodo_url="", archives={},
                     downloads_dir=tmp_path / "dl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DownloadError, match=f"has neither {SPEECH} nor {SONG}"):
        fetch_corpus(str(tmp_path / "empty"), tmp_path / "raw", zenodo_url="", archives={},
                     downloads_dir=tmp_path / "dl")
    assert not (tmp_path / "raw").exists()


# --- the stage script -------------------------------------------------------------------------

def run_stage(workdir: Path, source_env: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SER_DOWNLOAD_SOURCE"}
    env["PYTHONPATH"] = str(REPO / "src")
    if source_env is not None:
        env["SER_DOWNLOAD_SOURCE"] = source_env
    env["PYTHONPATH"] += os.pathsep + str(REPO)  # the `stages` package
    paths = ["--raw", "data/raw", "--corpora", "data/corpora", "--downloads", "data/downloads",
             "--report", "reports/source.json"]
    return subprocess.run([sys.executable, "-m", "stages.download", *paths], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=60)


def test_stage_env_override_and_error(tmp_path):
    make_mirror(tmp_path / "mirror")
    work = tmp_path / "work"
    work.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())  # every stage reads the whole file
    params["download"] = {"source": "../no-such-mirror", "zenodo_url": "http://127.0.0.1:9/files/", "archives": {},
                          "retries": 0}
    params["corpora"], params["prepare"]["corpora"], params["cross_corpus"]["corpora"] = {}, [], []
    params["split"]["also_train_on"], params["split"]["leave_one_corpus_out"]["corpora"] = [], ["ravdess"]
    (work / "params.yaml").write_text(yaml.safe_dump(params))

    failed = run_stage(work, None)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: mirror directory") and "Traceback" not in failed.stderr
    assert not (work / "reports").exists()

    done = run_stage(work, str(tmp_path / "mirror"))
    assert done.returncode == 0, done.stderr
    report = json.loads((work / "reports" / "source.json").read_text())
    assert report["overridden_by_env"] is True and report["source"] == "mirror"
    assert report["location"] == str(tmp_path / "mirror") and report["files"] == 6
    assert len(list((work / "data" / "raw").rglob("*.flac"))) == 6
