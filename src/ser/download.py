"""Stage `download`: put the RAVDESS audio under data/raw, from Zenodo or from a local mirror.

Zenodo: pooch fetches each archive and checks its md5; our downloader keeps a
`<name>.part` file between runs so that a cut transfer resumes (HTTP Range)
instead of starting over. Mirror: an already-extracted copy, checked against its
optional SHA256SUMS. Either way `dest` appears in one piece or not at all.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path, PurePosixPath

import pooch
import requests
from tqdm import tqdm

from ser.corpus import ARCHIVE_FOLDERS, AUDIO_EXTENSIONS
from ser.io import atomic_path, sha256_file

NETWORK_HINT = "check the network, or set download.source to a local mirror directory"
TIMEOUT = (15, 60)          # seconds to connect, and at most between two received bytes
CHUNK = 1 << 16
MAX_LISTED = 10


class DownloadError(RuntimeError):
    """The corpus could not be fetched; the message names the file or URL and what to do."""


def fetch_corpus(source: str, dest: Path, *, zenodo_url: str, archives: dict[str, str],
                 downloads_dir: Path, retries: int = 3, progress: bool = True) -> dict:
    """Fill `dest` with the corpus from `source` ("zenodo" or a mirror directory).

    Returns what was used: {"source", "location", ..., "files": audio files in dest}.
    """
    if source == "zenodo":
        return _from_zenodo(Path(dest), zenodo_url, archives, Path(downloads_dir), retries, progress)
    return _from_mirror(source, Path(dest))


# --- Zenodo -----------------------------------------------------------------------------------

def _from_zenodo(dest: Path, zenodo_url: str, archives: dict[str, str], downloads_dir: Path,
                 retries: int, progress: bool) -> dict:
    store = pooch.create(path=downloads_dir, base_url=zenodo_url, registry=dict(archives),
                         retry_if_failed=retries)
    # Download everything before touching dest, so a network failure leaves the old dest alone.
    zips = [_fetch_archive(store, name, downloads_dir / f"{name}.part", progress) for name in archives]
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        for zip_path in zips:
            _extract(zip_path, tmp / zip_path.name.removesuffix(".zip"))
        files = _count_audio(tmp)
        if not files:
            raise DownloadError(f"the archives from {store.base_url} hold no audio files "
                                f"({', '.join(AUDIO_EXTENSIONS)}); check download.archives in params.yaml")
    return {"source": "zenodo", "location": store.base_url, "archives": dict(archives), "files": files}


def _fetch_archive(store: pooch.Pooch, name: str, part: Path, progress: bool) -> Path:
    url = store.get_url(name)
    try:
        return Path(store.fetch(name, downloader=_ResumableDownload(part, progress)))
    except ValueError as err:
        # pooch's md5 check failed; it has already deleted the download (our .part went with it).
        found = re.search(r"expected (\S+) but got (\w+)", str(err))
        if not found:
            raise DownloadError(f"{name}: {err} (check download.archives in params.yaml)") from None
        expected, actual = found[1], found[2]
        algorithm = expected.split(":")[0] + ":" if ":" in expected else ""
        raise DownloadError(
            f"checksum mismatch for {url}: expected {expected}, got {algorithm}{actual}. The corrupt "
            f"download was deleted; re-run to download it again (if it keeps failing, the file on the "
            f"server or download.archives in params.yaml has changed)") from None
    except requests.HTTPError as err:
        raise DownloadError(f"could not download {url}: HTTP {err.response.status_code} "
                            f"{err.response.reason}; {NETWORK_HINT}") from None
    except requests.RequestException as err:
        kept = part.stat().st_size if part.exists() else 0
        if kept:
            raise DownloadError(f"download of {url} was interrupted after {kept} bytes "
                                f"({type(err).__name__}); re-run to resume from {part}, "
                                f"or {NETWORK_HINT}") from None
        raise DownloadError(f"could not reach {url} ({type(err).__name__}: {err}); {NETWORK_HINT}") from None
    except OSError as err:  # after RequestException, which is an OSError too
        raise DownloadError(f"could not save {name} in {part.parent}: {err}") from None


class _ResumableDownload:
    """A pooch downloader that resumes `part` with an HTTP Range request.

    pooch hands us a fresh temporary `output_file` on every attempt, so the bytes
    already received have to live in a stable file of our own until complete.
    """

    def __init__(self, part: Path, progress: bool):
        self.part, self.progress = part, progress

    def __call__(self, url: str, output_file: str, pooch_instance=None) -> None:
        self.part.parent.mkdir(parents=True, exist_ok=True)
        offset = self.part.stat().st_size if self.part.exists() else 0
        # identity: ranges and Content-Length must count the bytes of the file itself.
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
            if response.status_code == 416 and offset:
                pass  # nothing left to send: the partial is whole (if it is too long, the md5 says so)
            elif 400 <= response.status_code < 500:
                # Not worth pooch's retries (with their sleeps): asking again gets the same answer.
                raise DownloadError(f"could not download {url}: HTTP {response.status_code} "
                                    f"{response.reason}; {NETWORK_HINT}")
            else:
                response.raise_for_status()
                if response.status_code == 206:
                    content_range = response.headers.get("Content-Range", "")
                    if not content_range.startswith(f"bytes {offset}-"):
                        self.part.unlink()
                        raise requests.ConnectionError(
                            f"{url}: asked for bytes {offset}- but got {content_range!r}; starting over")
                else:
                    offset = 0  # a 200 is the whole file, whatever we asked for
                self._stream(url, response, offset)
        os.replace(self.part, output_file)

    def _stream(self, url: str, response: requests.Response, offset: int) -> None:
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length else None
        received = 0
        # urllib3 drops the bytes it has buffered when it detects a short body itself;
        # we check the length below instead, after those bytes are safely in the .part.
        response.raw.enforce_content_length = False
        with open(self.part, "ab" if offset else "wb") as out, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=self.part.name.removesuffix(".part"), disable=not self.progress) as bar:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if length and received < int(length):
            raise requests.ConnectionError(f"{url}: connection closed after {offset + received} "
                                           f"of {total} bytes")


def _extract(zip_path: Path, folder: Path) -> None:
    """Extract into `folder`, whether or not the members already start with its name."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for member in archive.infolist():
                name = member.filename.replace("\\", "/")
                path = PurePosixPath(name)
                if path.is_absolute() or re.match(r"[A-Za-z]:", name) or ".." in path.parts:
                    raise DownloadError(f"{zip_path} holds an unsafe path {member.filename!r}; refusing to "
                                        f"extract it (check download.zenodo_url and download.archives)")
                parts = list(path.parts)
                if parts and parts[0] == folder.name:
                    parts = parts[1:]
                if member.is_dir() or not parts or parts[0] == "__MACOSX":
                    continue
                target = folder.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{zip_path} is not a readable zip ({err}); delete it and re-run") from None


# --- Mirror -----------------------------------------------------------------------------------

def _from_mirror(source: str, dest: Path) -> dict:
    root = Path(source).expanduser()
    root = (root if root.is_absolute() else Path.cwd() / root).resolve()
    use_zenodo = "or set download.source: zenodo to download the archives"
    if not root.is_dir():
        raise DownloadError(f"mirror directory {root} (download.source: {source!r}) does not exist; "
                            f"point download.source at an extracted RAVDESS mirror, {use_zenodo}")
    folders = [root / name for name in ARCHIVE_FOLDERS.values() if (root / name).is_dir()]
    if not folders:
        raise DownloadError(f"mirror directory {root} has neither {' nor '.join(ARCHIVE_FOLDERS.values())}; "
                            f"point download.source at an extracted RAVDESS mirror, {use_zenodo}")
    sums = root / "SHA256SUMS"
    verified = _verify_sums(root, sums, use_zenodo) if sums.is_file() else 0
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        for folder in folders:
            try:
                shutil.copytree(folder, tmp / folder.name, ignore=_not_audio)
            except (OSError, shutil.Error) as err:
                raise DownloadError(f"could not copy {folder} to {dest}: {err}") from None
        files = _count_audio(tmp)
        if not files:
            raise DownloadError(f"mirror directory {root} holds no audio files "
                                f"({', '.join(AUDIO_EXTENSIONS)}); {use_zenodo}")
    # As given (usually relative), so the committed record holds no machine-specific path.
    return {"source": "mirror", "location": source, "folders": [f.name for f in folders],
            "verified": verified, "files": files}


def _verify_sums(root: Path, sums: Path, hint: str) -> int:
    """Check every file `sums` lists (sha256sum format); return how many were checked."""
    problems, checked = [], 0
    for number, line in enumerate(sums.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        entry = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line)
        if not entry:
            raise DownloadError(f"{sums}, line {number}: expected '<sha256>  <path>', got {line!r}")
        expected, relative = entry[1].lower(), entry[2]
        checked += 1
        path = root / relative
        if not path.is_file():
            problems.append(f"{relative} (missing)")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{relative} (sha256 {actual}, expected {expected})")
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise DownloadError(f"{len(problems)} of {checked} files in mirror {root} do not match {sums}:\n  "
                            f"{listed}{more}\nre-copy them from the original, {hint}")
    return checked


def _not_audio(directory: str, names: list[str]) -> list[str]:
    return [n for n in names
            if not n.lower().endswith(AUDIO_EXTENSIONS) and not os.path.isdir(os.path.join(directory, n))]


def _count_audio(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
