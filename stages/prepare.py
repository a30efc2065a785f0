"""Stage prepare: decode the RAVDESS file names, and each other corpus's label and speaker rules, into
the manifest (one row per clip) and the list of files left out."""

from ser.config import as_plain, load_params
from ser.io import write_parquet
from ser.manifest import build_manifest
from ser.stages import run_stage, stage_paths


def main():
    paths = stage_paths(__doc__, "raw", "corpora", "manifest", "skipped")
    params = load_params()
    corpora = {name: as_plain(params.corpora[name]) for name in params.prepare.corpora}
    manifest, skipped = build_manifest(paths.raw, skip_bad_files=params.prepare.skip_bad_files,
                                       corpora=corpora, corpora_dir=paths.corpora)
    write_parquet(paths.manifest, manifest)
    write_parquet(paths.skipped, skipped)
    print(f"manifest: {len(manifest)} clips ({manifest['corpus'].value_counts().to_dict()}, "
          f"{manifest['vocal_channel'].value_counts().to_dict()}), "
          f"{len(skipped)} skipped")


if __name__ == "__main__":
    run_stage(main)
