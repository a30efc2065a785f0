"""Stage download: the RAVDESS audio from Zenodo or a local mirror, and every other corpus that params'
`corpora` describes, each checked against its SHA256SUMS.

SER_DOWNLOAD_SOURCE, when set, replaces download.source; DVC does not see it, so the report
(--report) records what was actually used.
"""

import os

from ser.config import as_plain, load_params
from ser.corpora import fetch_corpora
from ser.download import fetch_corpus
from ser.io import write_json
from ser.stages import run_stage, stage_paths


def main():
    paths = stage_paths(__doc__, "raw", "corpora", "downloads", "report")
    params = load_params()
    options = params.download
    env_source = os.environ.get("SER_DOWNLOAD_SOURCE")
    corpora = fetch_corpora(as_plain(params.corpora),
                            paths.corpora)  # first: quick to fail
    used = fetch_corpus(str(env_source or options.source), paths.raw, zenodo_url=options.zenodo_url,
                        archives=options.archives, downloads_dir=paths.downloads, retries=options.retries)
    write_json(paths.report, {**used, "overridden_by_env": bool(env_source), "corpora": corpora})
    print(f"download: {used['files']} audio files from {used['source']} ({used['location']})")
    for name, copied in corpora.items():
        print(f"download: corpus {name}: {copied['files']} audio files from {copied['location']} "
              f"({copied['verified']} checked against its SHA256SUMS)")


if __name__ == "__main__":
    run_stage(main)
