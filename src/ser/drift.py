"""Fail when freshly reproduced metrics drift from the committed ones by more than their spread allows.

DVC computes the diff (`dvc metrics diff --json`); this applies, to each metric
the README reports, the tolerance that the committed result carries
(`drift_tolerance`, derived by `evaluate` from the spread over its repeats:
see `ser.evaluation.drift_tolerance`), and prints DVC's own table.

    python -m ser.drift [--rev HEAD] [--tolerance T] [targets...]

`--tolerance` overrides the committed tolerances (a stricter check, say); a
committed result without one (a single run) cannot be checked without it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

WATCHED = ("accuracy", "macro_f1")


def committed_tolerances(rev: str, path: str) -> dict:
    """The `drift_tolerance` of `path` as committed at `rev` ({} when it has none or is not committed)."""
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    if shown.returncode != 0:
        return {}
    return json.loads(shown.stdout).get("drift_tolerance") or {}


def drifted(diff: dict, tolerances: dict[str, dict], override: float | None = None,
            watched=WATCHED, targets=()) -> list[str]:
    """Lines describing each watched metric that moved by more than its tolerance, vanished, has none, or is
    nowhere to be compared: a check that compared nothing must not pass."""
    problems = [f"{path}: no metrics on either side (a wrong target?)" for path in targets if path not in diff]
    if not diff:
        problems.append("dvc metrics diff found no metrics at all: nothing was compared")
    for path, metrics in sorted(diff.items()):
        for name in watched:
            if name not in metrics:
                problems.append(f"{path}: {name} is in neither the committed nor the new metrics")
                continue
            old, new = metrics[name].get("old"), metrics[name].get("new")
            tolerance = override if override is not None else tolerances.get(path, {}).get(name)
            if old is None or new is None:
                problems.append(f"{path}: {name} is {'missing now' if new is None else 'new'} ({old} -> {new})")
            elif tolerance is None:
                problems.append(f"{path}: {name} has no committed drift tolerance (a single run has no spread "
                                f"to derive one from): commit a result of several repeats, or pass --tolerance")
            elif abs(new - old) > tolerance:
                problems.append(f"{path}: {name} moved {new - old:+.4f} ({old:.4f} -> {new:.4f}), "
                                f"more than the tolerance {tolerance:.4f}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default="HEAD", help="the commit whose metrics are the reference")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="one tolerance for every metric instead of the committed ones")
    parser.add_argument("targets", nargs="*", default=["reports/metrics.json"])
    args = parser.parse_args(argv)
    command = ["dvc", "metrics", "diff", args.rev, "--all", "--targets", *args.targets]
    table = subprocess.run([*command, "--md"], capture_output=True, text=True, check=True).stdout
    diff = json.loads(subprocess.run([*command, "--json"], capture_output=True, text=True, check=True).stdout)
    print(table or "(no metrics changed)")
    tolerances = {path: committed_tolerances(args.rev, path) for path in diff}
    problems = drifted(diff, tolerances, args.tolerance, targets=args.targets)
    for line in problems:
        print(f"drift: {line}", file=sys.stderr)
    if not problems:
        used = (f"{args.tolerance}" if args.tolerance is not None else
                "; ".join(f"{path}: " + ", ".join(f"{name} {tolerance:.4f}" for name, tolerance in sorted(t.items())
                                                   if tolerance is not None)
                          for path, t in sorted(tolerances.items()) if t))
        print(f"metrics within their tolerance of {args.rev} ({used})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
