"""Stage features: the selected arch's feature recipe over every clip and copy (data/features/)."""

from pathlib import Path

import pandas as pd

from ser.augment import INDEX_FILE
from ser.features import compute_feature_cache, make_recipe
from ser.params import load_params, selected_arch
from ser.stages import run_stage


def main():
    params = load_params()
    _, arch_params = selected_arch(params)
    recipe = make_recipe(arch_params["features"], params["audio"]["sample_rate"])
    manifest = pd.read_parquet("data/manifest.parquet")
    copies = pd.read_parquet(Path("data/augmented") / INDEX_FILE)
    items = pd.concat([
        manifest.assign(copy=0, path=[str(Path("data/raw") / p) for p in manifest["path"]]),
        copies.assign(path=[str(Path("data/augmented") / f) for f in copies["file"]]),
    ])[["clip_id", "copy", "path"]].sort_values(["clip_id", "copy"], ignore_index=True)
    compute_feature_cache(recipe, items, "data/features")
    print(f"features: {len(items)} rows of shape {recipe.shape} ({recipe.name})")


if __name__ == "__main__":
    run_stage(main)
