"""Stage split: assign each clip to train / validation / test (data/split.parquet)."""

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import pandas as pd

from ser.io import write_json, write_parquet
from ser.params import load_params
from ser.split import make_split, run_names, runs_of
from ser.stages import run_stage


def main():
    params = load_params()["split"]
    manifest = pd.read_parquet("data/manifest.parquet")
    split = make_split(manifest, params)
    write_parquet("data/split.parquet", split)
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
    summary = {"protocol": params["protocol"], "subset": params["subset"], "repeats": params.get("repeats", 1)}
    summary.update(described["all"] if len(described) == 1 else {"runs": described})
    write_json("reports/split.json", summary)
    for name, run in described.items():
        print(f"split: {name}: {run['clips']}")


if __name__ == "__main__":
    run_stage(main)
