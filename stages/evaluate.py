"""Stage evaluate: test-set metrics, predictions for DVC's confusion plot, and a confusion-matrix PNG.

With several folds (actor_kfold), each fold's model is scored on its own
held-out actors; the metrics are the mean ± std over folds, and the
predictions and confusion matrix are pooled over all folds.
"""

import numpy as np
import pandas as pd

from ser.checkpoint import fold_model_dir, load_checkpoint
from ser.corpus import EMOTIONS
from ser.evaluation import classification_metrics, cross_validation_summary, plot_confusion, result_record
from ser.features import load_feature_cache
from ser.io import read_json, write_json
from ser.params import load_params
from ser.split import folds_of
from ser.stages import run_stage
from ser.training import pick_device, predict_partition


def main():
    params = load_params()
    device = pick_device(params["train"]["device"])
    features, index, _ = load_feature_cache("data/features")
    folds = folds_of(pd.read_parquet("data/split.parquet"))
    per_fold, records, pooled_actual, pooled_predicted = [], [], [], []
    for fold, assignment in folds.items():
        model, card = load_checkpoint(fold_model_dir("models", fold, len(folds)), device=device)
        rows, actual, predicted = predict_partition(model, features, index, assignment, card["standardization"],
                                                    device)
        scores = classification_metrics(actual, predicted)
        per_fold.append({"fold": fold, "test_actors": card["split"]["test_actors"],
                         **{k: scores[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1",
                                                   "n_test")},
                         "epochs_run": card["epochs_run"], "best_epoch": card["best_epoch"]})
        records += [{"clip_id": clip, "fold": fold, "actual": EMOTIONS[a], "predicted": EMOTIONS[p]}
                    for clip, a, p in zip(index["clip_id"].iloc[rows], actual, predicted)]
        pooled_actual.append(actual)
        pooled_predicted.append(predicted)
    actual, predicted = np.concatenate(pooled_actual), np.concatenate(pooled_predicted)
    pooled = classification_metrics(actual, predicted)
    split = params["split"]
    if len(folds) == 1:
        metrics = {**pooled, "epochs_run": card["epochs_run"], "best_epoch": card["best_epoch"]}
    else:
        metrics = cross_validation_summary(per_fold, pooled)
        metrics.update(test_subset=split["actor_kfold"]["test_subset"],
                       train_subset=split["actor_kfold"]["train_subset"])
    metrics = {**metrics, "arch": card["arch"], "protocol": split["protocol"], "subset": split["subset"],
               "device": card["device"]}
    write_json("reports/metrics.json", metrics)
    write_json(f"reports/results/{split['protocol']}/{card['arch']}.json",
               result_record(metrics, read_json("reports/train/metrics.json")))
    write_json("reports/predictions.json", records)
    spread = "" if len(folds) == 1 else f" (mean of {len(folds)} folds; pooled below)"
    title = (f"{card['arch']}, {split['protocol']} split: accuracy {metrics['accuracy']:.3f}, "
             f"macro F1 {metrics['macro_f1']:.3f}{spread} ({len(actual)} test clips)")
    plot_confusion(actual, predicted, "reports/confusion_matrix.png", title=title)
    # Kept beside the kept metrics (see dvc.yaml), one per protocol and arch.
    plot_confusion(actual, predicted, f"reports/figures/{split['protocol']}/{card['arch']}_confusion.png", title=title)
    print(f"evaluate: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}{spread} "
          f"on {len(actual)} clips")


if __name__ == "__main__":
    run_stage(main)
