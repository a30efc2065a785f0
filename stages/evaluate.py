"""Stage evaluate: test-set metrics, predictions for DVC's confusion plot, and a confusion-matrix PNG."""

import numpy as np
import pandas as pd
import torch

from ser.checkpoint import load_checkpoint
from ser.corpus import EMOTIONS
from ser.evaluation import classification_metrics, plot_confusion
from ser.features import load_feature_cache
from ser.io import write_json
from ser.params import load_params
from ser.stages import run_stage
from ser.training import Batches, labels_for, partition_rows, pick_device, predict_logits


def main():
    params = load_params()
    device = pick_device(params["train"]["device"])
    model, card = load_checkpoint("models", device=device)
    features, index, _ = load_feature_cache("data/features")
    assignments = pd.read_parquet("data/split.parquet")
    rows = np.sort(partition_rows(index, assignments)["test"])
    actual = labels_for(index, rows, assignments)
    batches = Batches(torch.from_numpy(np.array(features[rows])), torch.from_numpy(actual))
    predicted = predict_logits(model, batches, card["standardization"], device).argmax(1).numpy()

    metrics = {**classification_metrics(actual, predicted), "arch": card["arch"],
               "protocol": params["split"]["protocol"], "subset": params["split"]["subset"],
               "device": card["device"], "epochs_run": card["epochs_run"], "best_epoch": card["best_epoch"]}
    write_json("reports/metrics.json", metrics)
    write_json("reports/predictions.json", [
        {"clip_id": clip, "actual": EMOTIONS[a], "predicted": EMOTIONS[p]}
        for clip, a, p in zip(index["clip_id"].iloc[rows], actual, predicted)])
    plot_confusion(actual, predicted, "reports/confusion_matrix.png",
                   title=f"{card['arch']}, {metrics['protocol']} split: accuracy {metrics['accuracy']:.3f}, "
                         f"macro F1 {metrics['macro_f1']:.3f} ({len(rows)} test clips)")
    print(f"evaluate: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f} on {len(rows)} clips")


if __name__ == "__main__":
    run_stage(main)
