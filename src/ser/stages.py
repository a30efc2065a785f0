"""What the stage scripts share: running a stage's main with errors a user can read."""

from __future__ import annotations

import os
import sys
import traceback


def run_stage(main) -> None:
    """Call `main()`; on a known kind of failure print one clear line and exit 1.

    Bad input (BadAudio, BadCorpus: ValueErrors) and download failures
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
