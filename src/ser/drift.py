"""Fail when freshly reproduced metrics drift from the committed ones.

DVC computes the diff (`dvc metrics diff --json`); this only applies the
tolerance to the metrics the README reports and prints DVC's own table.

    python -m ser.drift [--rev HEAD] [--tolerance 0.005]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

WATCHED = ("accuracy", "macro_f1")
DEFAULT_TOLERANCE = 0.005


def drifted(diff: dict, tolerance: float = DEFAULT_TOLERANCE, watched=WATCHED) -> list[str]:
    """Lines describing each watched metric that moved by more than `tolerance` (or vanished)."""
    problems = []
    for path, metrics in sorted(diff.items()):
        for name in watched:
            if name not in metrics:
                continue
            old, new = metrics[name].get("old"), metrics[name].get("new")
            if old is None or new is None:
                problems.append(f"{path}: {name} is {'missing now' if new is None else 'new'} ({old} -> {new})")
            elif abs(new - old) > tolerance:
                problems.append(f"{path}: {name} moved {new - old:+.4f} ({old:.4f} -> {new:.4f}), "
                                f"more than the tolerance {tolerance}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default="HEAD", help="the commit whose metrics are the reference")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("targets", nargs="*", default=["reports/metrics.json"])
    args = parser.parse_args(argv)
    command = ["dvc", "metrics", "diff", args.rev, "--all", "--targets", *args.targets]
    table = subprocess.run([*command, "--md"], capture_output=True, text=True, check=True).stdout
    diff = json.loads(subprocess.run([*command, "--json"], capture_output=True, text=True, check=True).stdout)
    print(table or "(no metrics changed)")
    problems = drifted(diff, args.tolerance)
    for line in problems:
        print(f"drift: {line}", file=sys.stderr)
    if not problems:
        print(f"metrics within {args.tolerance} of {args.rev} ({', '.join(WATCHED)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
