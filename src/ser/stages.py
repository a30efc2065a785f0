"""What the stage scripts share: their paths from the command line, and errors a user can read."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path


def stage_paths(doc: str, *names: str, argv: list[str] | None = None, positional: tuple[str, ...] = ()):
    """The stage's paths, each a required `--name` option (`-` for `_`): dvc.yaml's `cmd` gives them, so
    dvc.yaml is the one place that names a stage's inputs and outputs. `positional` names come first, as text."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    for name in positional:
        parser.add_argument(name)
    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), type=Path, required=True)
    return parser.parse_args(argv)


def run_stage(main) -> None:
    """Call `main()`; on a known kind of failure print one clear line and exit 1.

    Bad input (BadAudio, BadCorpus, ParamsError: ValueErrors) and download failures
    (DownloadError: a RuntimeError) carry messages that name the file and the fix.
    """
    try:
        main()
    except (KeyError, ValueError, FileNotFoundError, RuntimeError) as error:
        if "SER_TRACEBACK" in os.environ:  # for debugging a stage
            traceback.print_exc()
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
