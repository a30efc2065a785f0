"""Stage train: fit the selected arch once per run (repeat x fold): the kept models, and DVCLive's curves.

Run (repeat r, fold k) trains on that fold of repeat r's split with the seed `train.seed + r - 1`.
"""

import dataclasses
import time

import pandas as pd
from dvclive import Live

from ser.adaptation import effective_within, record_adaptation, training_views
from ser.checkpoint import run_model_dir, save_checkpoint
from ser.archs import check_archs
from ser.config import as_plain, load_params
from ser.evaluation import code_record
from ser.features import load_feature_cache
from ser.runtime import pick_device, set_torch_threads
from ser.split import repeat_seed, run_names, runs_of
from ser.stages import run_stage, stage_paths
from ser.training import train_model


def split_record(params, assignment: pd.DataFrame, repeat: int, fold: int, runs: int) -> dict:
    """What the card says of a run's split: what a user of the model needs to know it was trained on."""
    tested = assignment[assignment["partition"] == "test"]
    trained = assignment[assignment["partition"] != "test"]
    record = {"protocol": params.split.protocol, "subset": params.split.subset, "repeat": repeat, "fold": fold,
              "runs": runs, "split_seed": repeat_seed(params.split.seed, repeat),
              # RAVDESS alone in a split made before the corpus column
              "train_corpora": sorted(trained["corpus"].unique()) if "corpus" in trained else ["ravdess"]}
    if params.split.protocol == "leave_one_corpus_out":
        record["test_corpus"] = str(tested["corpus"].iloc[0])
    else:
        record["test_actors"] = sorted(int(a) for a in tested["actor"].unique())
    return record


def params_record(params, copies_used: bool) -> dict:
    """params.yaml's values that shaped a model, nested as params.yaml nests them: the arch's section, the
    split, the adaptation, the seed and batch size, and `augment` where the model trained on copies."""
    arch, arch_params = params.arch
    record = {"model": {"arch": arch}, "archs": {arch: as_plain(arch_params)}, "split": as_plain(params.split),
              "adaptation": as_plain(params.adaptation),
              "train": {"seed": params.train.seed, "batch_size": params.train.batch_size}}
    if copies_used:
        record["augment"] = as_plain(params.augment)
    return record


def main():
    paths = stage_paths(__doc__, "features", "split", "models", "live")
    params = load_params()
    check_archs(params)
    arch, arch_params = params.arch
    set_torch_threads(params.cores)
    features, index, recipe = load_feature_cache(paths.features)
    assignments = pd.read_parquet(paths.split)
    device = pick_device(params.train.device)
    try:
        live = Live(str(paths.live), dvcyaml=None, save_dvc_exp=False, report=None)
    except Exception as error:  # dvclive 3.49 reads HEAD before checking that a commit exists
        if "Empty git repo" in str(error):
            raise RuntimeError("DVCLive needs a git repository with at least one commit: "
                               "`git add -A && git commit` first") from None
        raise
    runs = runs_of(assignments)
    names = run_names(runs)
    per = recipe["standardize"]
    code = code_record()
    with live:
        started = time.perf_counter()
        for (repeat, fold), assignment in runs.items():
            name = names[repeat, fold]
            seed = repeat_seed(params.train.seed, repeat)
            within = effective_within(params.adaptation.within, assignment)
            view, second_view = training_views(features, index, assignment, within, arch_params.train, per,
                                               params.adaptation.single_view)
            state, card = train_model(arch, arch_params, view, index, assignment, feature_recipe=recipe,
                                      seed=seed, batch_size=params.train.batch_size, device=device,
                                      standardize_per=per, logger=live, metric_prefix=f"{name}/" if name else "",
                                      second_view=second_view)
            card = dataclasses.replace(card, split=split_record(params, assignment, repeat, fold, len(runs)),
                                       params=params_record(params, card.trained_on["augmented_copies"] > 0),
                                       commit=code)
            card = record_adaptation(card, features, index, assignment, arch_params.train, within,
                                     params.adaptation.prior_files, per)
            save_checkpoint(run_model_dir(paths.models, name), state, card)
            print(f"train: {name or 'model'} (seed {seed}): best validation accuracy "
                  f"{card.best_validation_accuracy:.4f} at epoch {card.best_epoch}/{card.epochs_run} on {device}")
        # Timing goes to the metrics, not the model card, so the models are identical run to run (at one
        # commit: the card names it, which no stage's re-run decision reads; see code_record).
        live.summary["train_seconds"] = round(time.perf_counter() - started, 1)


if __name__ == "__main__":
    run_stage(main)
