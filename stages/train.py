"""Stage train: fit the selected arch; best checkpoint to models/, curves to reports/train/ (DVCLive)."""

import time

import pandas as pd
import torch
from dvclive import Live

from ser.checkpoint import fold_model_dir, save_checkpoint
from ser.features import load_feature_cache
from ser.params import load_params, selected_arch
from ser.split import folds_of
from ser.stages import run_stage
from ser.training import pick_device, train_model


def main():
    params = load_params()
    arch, arch_params = selected_arch(params)
    options = params["train"]
    if options["num_threads"]:
        torch.set_num_threads(options["num_threads"])
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
    folds = folds_of(assignments)
    with live:
        started = time.perf_counter()
        for fold, assignment in folds.items():
            state, card = train_model(arch, arch_params, features, index, assignment, seed=options["seed"],
                                      batch_size=options["batch_size"], device=device, logger=live,
                                      metric_prefix="" if len(folds) == 1 else f"fold_{fold}/")
            card["feature_recipe"] = recipe
            card["split"] = {"protocol": params["split"]["protocol"], "subset": params["split"]["subset"],
                             "fold": fold, "folds": len(folds),
                             "test_actors": sorted(int(a) for a in assignment.loc[assignment["partition"] == "test",
                                                                                 "actor"].unique())}
            save_checkpoint(fold_model_dir("models", fold, len(folds)), state, card)
            print(f"train: fold {fold}/{len(folds)}: best validation accuracy {card['best_validation_accuracy']:.4f}"
                  f" at epoch {card['best_epoch']}/{card['epochs_run']} on {device}")
        # Timing goes to the metrics, not the model card, so models/ is identical run to run.
        live.summary["train_seconds"] = round(time.perf_counter() - started, 1)


if __name__ == "__main__":
    run_stage(main)
