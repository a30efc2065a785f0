"""Does padding each clip to Whisper's 30 s window make the features travel to other corpora? (issue 30)

    python benchmarks/padding_screen.py [--per-corpus 250] [--out reports/benchmarks/padding_screen.json]

Reads the manifest and the copies of the corpora that `dvc exp run -S split.protocol=leave_one_corpus_out -S
'prepare.corpora=[emodb,emovo,turev]'` leaves in the workspace, draws `--per-corpus` clips of each corpus
(seeded; RAVDESS's speech only), and encodes each clip three ways with the default recipe's Whisper encoder:
- `unpadded`: the recipe as params.yaml sets it (`pad_to_30s: false`): the clip's own frames;
- `padded`: `pad_to_30s: true`, pooled over all 1500 frames of the window, silence included (what the seed did);
- `padded, own frames`: the same encoder pass, pooled over the clip's frames only.
Then benchmarks/loco_screen.py's screen (a logistic regression standing in for the model, each corpus left out
in turn; inner = the training corpora alone) runs on each. A padded pass costs ~20x an unpadded one
(1.16 s against 0.055 s per clip on one core of an AMD EPYC Zen 5), hence a subset.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ser.audio import load_audio
from ser.augment import clips_and_copies
from ser.cluster import map_files
from ser.config import load_params
from ser.evaluation import current_commit, describe_machine
from ser.features import make_recipe
from ser.features.whisper import hidden_state_statistics, normalize_per_clip
from ser.io import write_json

sys.path.insert(0, str(Path(__file__).parent))
from loco_screen import screen  # noqa: E402

WAYS = ("unpadded", "padded", "padded, own frames")


def three_ways(recipes: tuple, path: str) -> np.ndarray:
    """[3, states, 2, width]: the clip unpadded, padded and pooled over the window, padded and pooled over its own
    frames (the frames an unpadded pass has)."""
    unpadded, padded = recipes
    signal = load_audio(path, unpadded.sample_rate)
    own_frames = unpadded.encoder_input(signal).shape[1] // 2  # the encoder's stride-2 convolution
    states = padded.hidden_states(signal)
    rows = [unpadded.extract(signal), hidden_state_statistics(states),
            hidden_state_statistics([state[:, :own_frames] for state in states])]
    if unpadded.normalize == "clip":
        rows[1:] = [normalize_per_clip(row) for row in rows[1:]]
    return np.stack(rows).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default="data/manifest.parquet")
    parser.add_argument("--raw", default="data/raw")
    parser.add_argument("--per-corpus", type=int, default=250)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="reports/benchmarks/padding_screen.json")
    args = parser.parse_args()
    params = load_params()
    manifest = pd.read_parquet(args.manifest)
    manifest = manifest[(manifest["corpus"] != "ravdess") | (manifest["vocal_channel"] == "speech")]
    if manifest["corpus"].nunique() < 3:
        raise SystemExit(f"{args.manifest}: needs at least 3 corpora (run the leave_one_corpus_out experiment first)")
    clips = pd.concat([rows.sample(min(args.per_corpus, len(rows)), random_state=args.seed)
                       for _, rows in manifest.groupby("corpus")]).sort_values("clip_id").reset_index(drop=True)
    options = dict(params.archs["whisper_mlp"].features)
    recipes = tuple(make_recipe({**options, "pad_to_30s": pad}, params.audio.sample_rate) for pad in (False, True))
    for recipe in recipes:
        recipe.threads = 1
    started = time.perf_counter()
    features = np.zeros((len(clips), 3, *recipes[0].shape), dtype=np.float32)
    paths = clips_and_copies(clips, args.raw, "", with_copies=False)["path"]  # sorted by clip, as `clips`
    for row, result in map_files(three_ways, recipes, list(paths), workers=args.workers,
                                 start_method="spawn", desc="three ways", unit="clip"):
        features[row] = result
    encode_seconds = time.perf_counter() - started
    np.save(Path(args.out).with_suffix(".npy"), features)  # the encodings, for a screen of other variants
    results = []
    for way, name in enumerate(WAYS):
        corpora = screen(features[:, way], clips, {"within": "corpus"})
        results.append({"way": name, "corpora": corpora,
                        **{f"{side}_mean": {mode: round(float(np.mean([corpora[c][side][mode] for c in corpora])), 2)
                                            for mode in ("batch", "single")} for side in ("outer", "inner")}})
        print(name, results[-1]["inner_mean"], results[-1]["outer_mean"], flush=True)
    write_json(Path(args.out), {"machine": describe_machine("cpu"), "commit": current_commit(),
                                "clips": clips["corpus"].value_counts().sort_index().to_dict(),
                                "per_corpus": args.per_corpus, "seed": args.seed,
                                "encode_seconds": round(encode_seconds, 1), "ways": results})


if __name__ == "__main__":
    main()
