"""Stage prepare: decode the RAVDESS file names into data/manifest.parquet."""

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

from ser.io import write_parquet
from ser.manifest import build_manifest
from ser.params import load_params
from ser.stages import run_stage


def main():
    params = load_params()["prepare"]
    manifest, skipped = build_manifest("data/raw", skip_bad_files=params["skip_bad_files"])
    write_parquet("data/manifest.parquet", manifest)
    write_parquet("data/skipped.parquet", skipped)
    print(f"manifest: {len(manifest)} clips ({manifest['vocal_channel'].value_counts().to_dict()}), "
          f"{len(skipped)} skipped")


if __name__ == "__main__":
    run_stage(main)
