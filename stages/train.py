"""Stage train: fit the selected arch; best checkpoint to models/, curves to reports/train/ (DVCLive)."""

import pandas as pd
import torch
from dvclive import Live

from ser.checkpoint import save_checkpoint
from ser.features import load_feature_cache
from ser.params import load_params, selected_arch
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
    with Live("reports/train", dvcyaml=None, save_dvc_exp=False, report=None) as live:
        state, card = train_model(arch, arch_params, features, index, assignments, seed=options["seed"],
                                  batch_size=options["batch_size"], device=device, logger=live)
    card["feature_recipe"] = recipe
    card["split"] = {k: params["split"][k] for k in ("protocol", "subset")}
    save_checkpoint("models", state, card)
    print(f"train: best validation accuracy {card['best_validation_accuracy']:.4f} at epoch "
          f"{card['best_epoch']}/{card['epochs_run']} on {device}")


if __name__ == "__main__":
    run_stage(main)
