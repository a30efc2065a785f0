"""Re-derive the kept results that fit CI's budget and fail when they drift (what `.ci/run` runs after the tests).

    python -m ser.reproduce [--tolerance T]

Each entry of CI_REDERIVES is a (protocol, arch) whose kept result
`reports/results/<protocol>/<arch>.json` is committed. The one that params.yaml
selects runs as `dvc repro`; every other one as `dvc exp run -S split.protocol=...
-S model.arch=...`, so it is exactly what a user types. DVC caches augmentation
and features, so an experiment re-runs only the stages its params touch. At the
end, `ser.drift` compares every re-derived file with the committed one, each
metric within the tolerance its committed result carries (derived from its
spread over repeats) unless `--tolerance` overrides it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from . import drift
from .config import load_params

# What CI re-derives on 2 CPU cores, in the order it runs them (measured times in the README).
CI_REDERIVES = (
    ("random", "whisper_mlp"),
    ("actor_kfold", "whisper_mlp"),
)


def kept_result(protocol: str, arch: str) -> str:
    return f"reports/results/{protocol}/{arch}.json"


def command_for(protocol: str, arch: str, default: tuple[str, str]) -> list[str]:
    """`dvc repro` for params.yaml's (split.protocol, model.arch), else a `dvc exp run` that sets both choices."""
    if (protocol, arch) == default:
        return ["dvc", "repro"]
    # Both are set every time: an experiment in the workspace leaves its params in params.yaml.
    return ["dvc", "exp", "run", "-S", f"split.protocol={protocol}", "-S", f"model.arch={arch}"]


def ordered(entries, default: tuple[str, str]) -> list[tuple[str, str]]:
    """The default first, so the cheapest check of the whole pipeline fails first."""
    return sorted(entries, key=lambda entry: entry != default)


def git_identity(environ) -> dict:
    """`dvc exp run` commits to a hidden ref, which needs a git identity that a CI machine may lack."""
    env = dict(environ)
    for role in ("AUTHOR", "COMMITTER"):
        env.setdefault(f"GIT_{role}_NAME", "ser-ci")
        env.setdefault(f"GIT_{role}_EMAIL", "ser-ci@localhost")
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tolerance", type=float, default=None,
                        help="one tolerance for every metric instead of the committed ones")
    parser.add_argument("--rev", default="HEAD", help="the commit whose kept results are the reference")
    args = parser.parse_args(argv)
    params = load_params()
    default = (params.split.protocol, params.model.arch)
    entries = ordered(CI_REDERIVES, default)
    missing = [kept_result(*entry) for entry in entries if not os.path.exists(kept_result(*entry))]
    if missing:
        print(f"reproduce: no committed result to compare with: {', '.join(missing)}", file=sys.stderr)
        return 1
    env = git_identity(os.environ)
    for protocol, arch in entries:
        command = command_for(protocol, arch, default)
        print(f"reproduce: {protocol}/{arch}: {' '.join(command)}", flush=True)
        started = time.monotonic()
        subprocess.run(command, check=True, env=env)
        print(f"reproduce: {protocol}/{arch} took {time.monotonic() - started:.0f} s", flush=True)
    override = [] if args.tolerance is None else ["--tolerance", str(args.tolerance)]
    return drift.main(["--rev", args.rev, *override, *(kept_result(*entry) for entry in entries)])


if __name__ == "__main__":
    sys.exit(main())
