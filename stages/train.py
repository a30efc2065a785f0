"""Stage train: fit the selected arch once per run (repeat x fold); best checkpoints to models/, curves to reports/train/ (DVCLive).

Run (repeat r, fold k) trains on that fold of repeat r's split with the seed `train.seed + r - 1`.
"""

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import time

import pandas as pd
from dvclive import Live

from ser.adaptation import effective_within, record_adaptation, run_view
from ser.checkpoint import run_model_dir, save_checkpoint
from ser.features import load_feature_cache
from ser.params import load_params, selected_arch
from ser.split import repeat_seed, run_names, runs_of
from ser.stages import run_stage
from ser.training import pick_device, set_torch_threads, train_model


def main():
    params = load_params()
    arch, arch_params = selected_arch(params)
    options = params["train"]
    set_torch_threads(params["cores"])
    features, index, recipe = load_feature_cache("data/features")
    assignments = pd.read_parquet("data/split.parquet")
    device = pick_device(options["device"])
    try:
        live = Live("reports/train", dvcyaml=None, save_dvc_exp=False, report=None)
    except Exception as error:  # dvclive 3.49 reads HEAD before checking that a commit exists
        if "Empty git repo" in str(error):
            raise RuntimeError("DVCLive needs a git repository with at least one commit: "
                               "`git add -A && git commit` first") from None
        raise
    runs = runs_of(assignments)
    names = run_names(runs)
    per = recipe.get("standardize", "channel")
    by_corpus = params["split"]["protocol"] == "leave_one_corpus_out"
    with live:
        started = time.perf_counter()
        for (repeat, fold), assignment in runs.items():
            name = names[repeat, fold]
            seed = repeat_seed(options["seed"], repeat)
            within = effective_within(params["adaptation"]["within"], assignment)
            trained_on = run_view(features, index, assignment, within, per)
            state, card = train_model(arch, arch_params, trained_on, index, assignment, seed=seed,
                                      batch_size=options["batch_size"], device=device,
                                      standardize_per=per, logger=live,
                                      metric_prefix=f"{name}/" if name else "")
            card["feature_recipe"] = recipe
            tested = assignment[assignment["partition"] == "test"]
            card["split"] = {"protocol": params["split"]["protocol"], "subset": params["split"]["subset"],
                             "repeat": repeat, "fold": fold, "runs": len(runs),
                             "split_seed": repeat_seed(params["split"]["seed"], repeat)}
            trained = assignment[assignment["partition"] != "test"]
            # What a user of the model needs to know it was trained on (RAVDESS alone in an older split).
            card["split"]["train_corpora"] = sorted(trained["corpus"].unique()) if "corpus" in trained else ["ravdess"]
            if by_corpus:
                card["split"]["test_corpus"] = str(tested["corpus"].iloc[0])
            else:
                card["split"]["test_actors"] = sorted(int(a) for a in tested["actor"].unique())
            record_adaptation(card, features, index, assignment, arch_params["train"], within,
                              params["adaptation"]["prior_files"], per)
            save_checkpoint(run_model_dir("models", name), state, card)
            print(f"train: {name or 'model'} (seed {seed}): best validation accuracy "
                  f"{card['best_validation_accuracy']:.4f} at epoch {card['best_epoch']}/{card['epochs_run']} on {device}")
        # Timing goes to the metrics, not the model card, so models/ is identical run to run.
        live.summary["train_seconds"] = round(time.perf_counter() - started, 1)


if __name__ == "__main__":
    run_stage(main)
