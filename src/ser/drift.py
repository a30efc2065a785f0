"""Fail when freshly reproduced metrics drift from the committed ones by more than their spread allows.

DVC computes the diff (`dvc metrics diff --json`) and prints its own table; this
judges each metric the README reports by a paired test over the repeats.

A re-derivation runs the same repeats with the same seeds, so it is compared
repeat by repeat: the differences d_r = new_r - kept_r, and their mean (the
difference of the two means) against the standard error of that mean,
s_d / sqrt(N), times Student's t for a two-sided 95 % test with N - 1 degrees
of freedom. The splits are the same on both sides, so their share of the
spread over repeats cancels, and a worse setting that costs 2 points in every
repeat stands out where the spread of single runs (1.4 points for the default)
would hide it. Where the bits do not part, every d_r is 0; where a CPU makes
training take another path from the first epoch on, the re-derivation is at
worst as far as other training seeds on the same splits, and the check then
calls drift 1 time in 20. The tolerance is never under one test clip per
repeat (1 / n_test), the finest step a score can take: a change of one clip
in one repeat is not drift.

    python -m ser.drift [--rev HEAD] [--tolerance T] [targets...]

`--tolerance` replaces the paired test by one fixed bound on the difference of
the means; a result without per-repeat values on both sides (a single run)
cannot be checked without it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from .evaluation import mean_interval

WATCHED = ("accuracy", "macro_f1")
DRIFT_CONFIDENCE = 0.95


def committed_result(rev: str, path: str) -> dict:
    """`path` as committed at `rev` ({} when it is not committed)."""
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return json.loads(shown.stdout) if shown.returncode == 0 else {}


def current_result(path: str) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).is_file() else {}


def paired_tolerance(kept: dict, new: dict, name: str, confidence: float = DRIFT_CONFIDENCE) -> float | None:
    """How far the mean of `name` may move between two results of the same repeats (see the module's text).

    None where either side lacks per-repeat values (`per_repeat`, as ser.evaluation writes them), the repeats
    differ, or there are fewer than two: nothing to estimate a spread from."""
    def by_repeat(result):
        return {row["repeat"]: row[name] for row in result.get("per_repeat", []) if row.get(name) is not None}
    kept_values, new_values = by_repeat(kept), by_repeat(new)
    if len(kept_values) < 2 or set(kept_values) != set(new_values):
        return None
    differences = np.array([new_values[r] - kept_values[r] for r in sorted(kept_values)], dtype=np.float64)
    low, high = mean_interval(differences, confidence)  # t(., N - 1) times the standard error, either side
    one_clip = 1.0 / kept["n_test"] if kept.get("n_test") else 0.0
    return float(max((high - low) / 2, one_clip))


def paired_tolerances(kept: dict, new: dict, watched=WATCHED) -> dict:
    return {name: paired_tolerance(kept, new, name) for name in watched}


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
                problems.append(f"{path}: {name} has no drift tolerance: the paired test needs the values of the "
                                f"same 2 or more repeats on both sides (a single run has no spread to go by): "
                                f"commit a result of several repeats, or pass --tolerance")
            elif abs(new - old) > tolerance:
                problems.append(f"{path}: {name} moved {new - old:+.4f} ({old:.4f} -> {new:.4f}), "
                                f"more than the tolerance {tolerance:.4f}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default="HEAD", help="the commit whose metrics are the reference")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="one fixed bound on every metric's difference of means instead of the paired test")
    parser.add_argument("targets", nargs="*", default=["reports/metrics.json"])
    args = parser.parse_args(argv)
    command = ["dvc", "metrics", "diff", args.rev, "--all", "--targets", *args.targets]
    table = subprocess.run([*command, "--md"], capture_output=True, text=True, check=True).stdout
    diff = json.loads(subprocess.run([*command, "--json"], capture_output=True, text=True, check=True).stdout)
    print(table or "(no metrics changed)")
    tolerances = {path: paired_tolerances(committed_result(args.rev, path), current_result(path)) for path in diff}
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
