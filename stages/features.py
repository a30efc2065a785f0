"""Stage features: the selected arch's feature recipe over every clip, and over every augmented copy
when the arch trains on them (`archs.<arch>.train.augmented_copies`), into data/features/."""

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import pandas as pd

from ser import usable_cores
from ser.augment import clips_and_copies
from ser.features import compute_feature_cache, make_recipe
from ser.params import load_params, selected_arch
from ser.stages import run_stage


def main():
    params = load_params()
    _, arch_params = selected_arch(params)
    recipe = make_recipe(arch_params["features"], params["audio"]["sample_rate"])
    # Only training reads copies, and only when the arch trains on them: encoding copies no run reads
    # would cost the stage 5x its time (README, "Whisper: every layer").
    items = clips_and_copies(pd.read_parquet("data/manifest.parquet"), "data/raw", "data/augmented",
                             with_copies=arch_params["train"]["augmented_copies"])
    compute_feature_cache(recipe, items, "data/features", workers=usable_cores(params["cores"]))
    print(f"features: {len(items)} rows of shape {recipe.shape} ({recipe.name})")


if __name__ == "__main__":
    run_stage(main)
