"""Stage prepare: decode the RAVDESS file names, and each other corpus's label and speaker rules, into
data/manifest.parquet."""

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

from ser.io import write_parquet
from ser.manifest import build_manifest
from ser.params import load_params
from ser.stages import run_stage


def main():
    params = load_params()
    described = params.get("corpora") or {}
    unknown = [name for name in params["prepare"]["corpora"] if name not in described]
    if unknown:
        raise KeyError(f"prepare.corpora names {unknown}, which params.yaml does not describe under corpora "
                       f"(it has {sorted(described)})")
    corpora = {name: described[name] for name in params["prepare"]["corpora"]}
    manifest, skipped = build_manifest("data/raw", skip_bad_files=params["prepare"]["skip_bad_files"],
                                       corpora=corpora, corpora_dir="data/corpora")
    write_parquet("data/manifest.parquet", manifest)
    write_parquet("data/skipped.parquet", skipped)
    print(f"manifest: {len(manifest)} clips ({manifest['corpus'].value_counts().to_dict()}, "
          f"{manifest['vocal_channel'].value_counts().to_dict()}), "
          f"{len(skipped)} skipped")


if __name__ == "__main__":
    run_stage(main)
