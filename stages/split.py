"""Stage split: assign each clip to train / validation / test (data/split.parquet)."""

import pandas as pd

from ser.io import write_json, write_parquet
from ser.params import load_params
from ser.split import folds_of, make_split
from ser.stages import run_stage


def main():
    params = load_params()["split"]
    manifest = pd.read_parquet("data/manifest.parquet")
    split = make_split(manifest, params)
    write_parquet("data/split.parquet", split)
    folds = {fold: {"clips": assignment.groupby("partition").size().to_dict(),
                    "actors": {p: sorted(int(a) for a in g["actor"].unique())
                               for p, g in assignment.groupby("partition")}}
             for fold, assignment in folds_of(split).items()}
    summary = {"protocol": params["protocol"], "subset": params["subset"]}
    summary.update(folds[1] if len(folds) == 1 else {"folds": folds})
    write_json("reports/split.json", summary)
    for fold, described in folds.items():
        print(f"split: fold {fold}: {described['clips']}")


if __name__ == "__main__":
    run_stage(main)
