"""Stage augment: seeded augmented copies of every clip."""

import pandas as pd

from ser import usable_cores
from ser.augment import augment_corpus
from ser.cluster import cluster_address
from ser.config import load_params
from ser.stages import run_stage, stage_paths


def main():
    paths = stage_paths(__doc__, "manifest", "raw", "out")
    params = load_params()
    manifest = pd.read_parquet(paths.manifest)
    index = augment_corpus(manifest, paths.raw, paths.out, params.audio.sample_rate, params.augment,
                           workers=usable_cores(params.cores),
                           address=cluster_address(params.cluster.address))
    print(f"augment: {len(index)} copies of {len(manifest)} clips")


if __name__ == "__main__":
    run_stage(main)
