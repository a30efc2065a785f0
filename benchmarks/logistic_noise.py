"""How far whisper_mlp's logistic-regression member moves when the features move by another CPU's last bits.

The Whisper features of two CPU vendors differ in their last bits (docs/experiments.md, "The same bits on every CPU"), and
the logistic member is refitted on them where CI re-derives a result. This takes a kept `random` model
(`models/repeat_<r>`, from `dvc repro`), multiplies every cached feature by (1 + noise * N(0, 1)), refits the
member on the noisy rows it trained on, and compares the model's class probabilities on the test clips with
the kept model's: the largest change, and how many predictions flip.

    python benchmarks/logistic_noise.py [--repeat 1] [--noise 3e-5]
"""

import ser  # noqa: F401  first, before numpy loads: the same arithmetic as the stages

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whisper_heads import with_logistic_member  # noqa: E402

from ser.checkpoint import load_checkpoint, run_model_dir  # noqa: E402
from ser.evaluation import describe_machine  # noqa: E402
from ser.features import load_feature_cache  # noqa: E402
from ser.params import load_params  # noqa: E402
from ser.split import make_split, run_names, runs_of  # noqa: E402
from ser.training import final_model_rows, partition_logits, training_batches  # noqa: E402


def probabilities_on_test_clips(model, card: dict, features: np.ndarray, index: pd.DataFrame,
                       assignment: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """`model`'s class probabilities on the test clips of `features`, and the clips' labels."""
    _, actual, logits = partition_logits(model, features, index, assignment, card["standardization"], "cpu")
    return torch.softmax(logits, 1).numpy(), np.asarray(actual)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="the kept random repeat whose model is used")
    parser.add_argument("--noise", type=float, default=3e-5, help="relative std of the noise on every feature")
    args = parser.parse_args()
    params = load_params()
    if params["split"]["protocol"] != "random":
        raise SystemExit("this reads the kept `random` models: run it with split.protocol: random")
    features, index, _ = load_feature_cache("data/features")
    runs = runs_of(make_split(pd.read_parquet("data/manifest.parquet"), params["split"]))
    run = next((key for key in runs if key[0] == args.repeat), None)
    if run is None:
        raise SystemExit(f"split.repeats has no repeat {args.repeat}")
    assignment = runs[run]
    model, card = load_checkpoint(run_model_dir("models", run_names(runs)[run]))
    if card["model_options"].get("logistic_c") is None:
        raise SystemExit("the kept model has no logistic member (archs.whisper_mlp.model.logistic_c is null)")
    started = time.perf_counter()
    clean, actual = probabilities_on_test_clips(model, card, features, index, assignment)
    noise = np.random.default_rng(0).standard_normal(features.shape).astype(np.float32)
    noisy_features = features * (1 + args.noise * noise)  # float32: the cache's float16 would round the noise away
    refitted = with_logistic_member(card, model.state_dict(), card["model_options"]["logistic_c"],
                                    training_batches(noisy_features, index, assignment,
                                                     final_model_rows(index, assignment, card["train_recipe"])), "cpu")
    noisy, _ = probabilities_on_test_clips(refitted, card, noisy_features, index, assignment)
    print(f"{describe_machine('cpu')}: repeat {args.repeat}, {len(actual)} test clips, noise {args.noise:g}")
    print(f"accuracy clean {100 * (clean.argmax(1) == actual).mean():.2f}, "
          f"noisy {100 * (noisy.argmax(1) == actual).mean():.2f}")
    print(f"largest probability change {np.abs(noisy - clean).max():.4f}, "
          f"predictions flipped {(noisy.argmax(1) != clean.argmax(1)).sum()} "
          f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
