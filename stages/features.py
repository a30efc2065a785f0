"""Stage features: the selected arch's feature recipe over every clip, and over every augmented copy
when the arch trains on them (`archs.<arch>.train.augmented_copies`)."""

import pandas as pd

from ser import usable_cores
from ser.augment import clips_and_copies
from ser.archs import check_archs
from ser.cluster import cluster_address
from ser.config import load_params
from ser.features import compute_feature_cache, make_recipe
from ser.stages import run_stage, stage_paths


def main():
    paths = stage_paths(__doc__, "manifest", "raw", "augmented", "out")
    params = load_params()
    check_archs(params)
    _, arch = params.arch
    recipe = make_recipe(arch.features, params.audio.sample_rate)
    # Only training reads copies, and only when the arch trains on them: encoding copies no run reads
    # would cost the stage 5x its time (docs/experiments.md, "Whisper: every layer").
    items = clips_and_copies(pd.read_parquet(paths.manifest), paths.raw, paths.augmented,
                             with_copies=arch.train.augmented_copies)
    compute_feature_cache(recipe, items, paths.out, workers=usable_cores(params.cores),
                          address=cluster_address(params.cluster.address))
    print(f"features: {len(items)} rows of shape {recipe.shape} ({recipe.name})")


if __name__ == "__main__":
    run_stage(main)
