"""Stage split: assign each clip to train / validation / test, once per run (repeat x fold)."""

import pandas as pd

from ser.config import load_params
from ser.io import write_json, write_parquet
from ser.split import make_split, run_names, runs_of
from ser.stages import run_stage, stage_paths


def main():
    paths = stage_paths(__doc__, "manifest", "split", "report")
    params = load_params().split
    split = make_split(pd.read_parquet(paths.manifest), params)
    write_parquet(paths.split, split)
    runs = runs_of(split)
    names = run_names(runs)
    by_corpus = "corpus" in split  # several corpora (leave_one_corpus_out, split.also_train_on): name speakers
    described = {names[run] or "all":
                 {"clips": assignment.groupby("partition").size().to_dict(),
                  **({"corpora": {p: sorted(g["corpus"].unique()) for p, g in assignment.groupby("partition")},
                      "speakers": {p: sorted(g["speaker"].unique()) for p, g in assignment.groupby("partition")}}
                     if by_corpus else
                     {"actors": {p: sorted(int(a) for a in g["actor"].unique())
                                 for p, g in assignment.groupby("partition")}})}
                 for run, assignment in runs.items()}
    summary = {"protocol": params.protocol, "subset": params.subset, "repeats": params.repeats}
    summary.update(described["all"] if len(described) == 1 else {"runs": described})
    write_json(paths.report, summary)
    for name, run in described.items():
        print(f"split: {name}: {run['clips']}")


if __name__ == "__main__":
    run_stage(main)
