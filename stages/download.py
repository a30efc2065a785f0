"""Stage download: the RAVDESS audio into data/raw, from Zenodo or a local mirror.

SER_DOWNLOAD_SOURCE, when set, replaces download.source; DVC does not see it, so
reports/source.json records what was actually used.
"""

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import os
from pathlib import Path

from ser.download import fetch_corpus
from ser.io import write_json
from ser.params import load_params
from ser.stages import run_stage


def main():
    params = load_params()["download"]
    env_source = os.environ.get("SER_DOWNLOAD_SOURCE")
    used = fetch_corpus(str(env_source or params["source"]), Path("data/raw"),
                        zenodo_url=params["zenodo_url"], archives=params["archives"],
                        downloads_dir=Path("data/downloads"), retries=int(params["retries"]))
    write_json("reports/source.json", {**used, "overridden_by_env": bool(env_source)})
    print(f"download: {used['files']} audio files from {used['source']} ({used['location']})")


if __name__ == "__main__":
    run_stage(main)
