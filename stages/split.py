"""Stage split: assign each clip to train / validation / test (data/split.parquet)."""

import pandas as pd

from ser.io import write_json, write_parquet
from ser.params import load_params
from ser.split import assign_partitions
from ser.stages import run_stage


def main():
    params = load_params()["split"]
    manifest = pd.read_parquet("data/manifest.parquet")
    split = assign_partitions(manifest, params["protocol"], subset=params["subset"],
                              test_fraction=params["test_fraction"], test_actors=params["test_actors"],
                              validation_fraction=params["validation_fraction"], seed=params["seed"])
    write_parquet("data/split.parquet", split)
    summary = {"protocol": params["protocol"], "subset": params["subset"],
               "clips": split.groupby("partition").size().to_dict(),
               "actors": {p: sorted(int(a) for a in g["actor"].unique()) for p, g in split.groupby("partition")}}
    write_json("reports/split.json", summary)
    print(f"split: {summary['clips']}")


if __name__ == "__main__":
    run_stage(main)
