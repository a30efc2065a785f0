"""Stage augment: seeded augmented copies of every clip (data/augmented/)."""

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import pandas as pd

from ser import usable_cores
from ser.augment import AugmentConfig, augment_corpus
from ser.params import load_params
from ser.stages import run_stage


def main():
    params = load_params()
    options = params["augment"]
    config = AugmentConfig(copies=options["copies"], time_stretch=tuple(options["time_stretch"]),
                           pitch_shift_semitones=options["pitch_shift_semitones"],
                           noise_peak_fraction=options["noise_peak_fraction"], seed=options["seed"])
    manifest = pd.read_parquet("data/manifest.parquet")
    index = augment_corpus(manifest, "data/raw", "data/augmented", params["audio"]["sample_rate"], config,
                           workers=usable_cores(params["cores"]))
    print(f"augment: {len(index)} copies of {len(manifest)} clips")


if __name__ == "__main__":
    run_stage(main)
