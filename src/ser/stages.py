"""What the stage scripts share: running a stage's main with errors a user can read."""

from __future__ import annotations

import sys
import traceback


def run_stage(main) -> None:
    """Call `main()`; on a known kind of failure print one clear line and exit 1."""
    from .audio import BadAudio
    from .manifest import BadCorpus

    try:
        main()
    except (BadCorpus, BadAudio, KeyError, ValueError, FileNotFoundError, RuntimeError) as error:
        if "SER_TRACEBACK" in __import__("os").environ:
            traceback.print_exc()
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
