"""Stage download: the RAVDESS audio into data/raw, from Zenodo or a local mirror, and every other corpus
that params' `corpora` describes into data/corpora/<name>, each checked against its SHA256SUMS.

SER_DOWNLOAD_SOURCE, when set, replaces download.source; DVC does not see it, so
reports/source.json records what was actually used.
"""

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import os
from pathlib import Path

from ser.corpora import fetch_corpora
from ser.download import fetch_corpus
from ser.io import write_json
from ser.params import load_params
from ser.stages import run_stage


def main():
    everything = load_params()
    params = everything["download"]
    env_source = os.environ.get("SER_DOWNLOAD_SOURCE")
    corpora = fetch_corpora(everything.get("corpora") or {}, Path("data/corpora"))  # first: quick to fail
    used = fetch_corpus(str(env_source or params["source"]), Path("data/raw"),
                        zenodo_url=params["zenodo_url"], archives=params["archives"],
                        downloads_dir=Path("data/downloads"), retries=int(params["retries"]))
    write_json("reports/source.json", {**used, "overridden_by_env": bool(env_source), "corpora": corpora})
    print(f"download: {used['files']} audio files from {used['source']} ({used['location']})")
    for name, copied in corpora.items():
        print(f"download: corpus {name}: {copied['files']} audio files from {copied['location']} "
              f"({copied['verified']} checked against its SHA256SUMS)")


if __name__ == "__main__":
    run_stage(main)
