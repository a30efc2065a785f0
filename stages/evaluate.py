"""Stage evaluate: test-set metrics, predictions for DVC's confusion plot, and a confusion-matrix PNG.

Each run (repeat x fold) is scored with its own model on its own test clips.
A repeat scores the mean over its folds; the metrics are the mean over
repeats with their spread, 95 % interval and per-repeat values (what ser.drift pairs); the predictions
and the confusion matrix are pooled over every run.
"""

import numpy as np
import pandas as pd

from ser.adaptation import model_view
from ser.checkpoint import load_checkpoint, run_model_dir
from ser.config import load_params
from ser.corpus import EMOTIONS
from ser.corpus_holdout import score_run, summarize
from ser.evaluation import SUMMARIZED, classification_metrics, plot_confusion, repeated_summary, result_record
from ser.features import load_feature_cache
from ser.features.whisper import padding_of
from ser.inference import predict_partition
from ser.io import read_json, write_json
from ser.models.whisper_mlp import STATISTICS
from ser.runtime import pick_device, set_torch_threads
from ser.split import run_names, runs_of
from ser.stages import run_stage, stage_paths

PATHS = ("features", "split", "models", "train_metrics", "metrics", "predictions", "confusion", "results", "figures")


def main():
    paths = stage_paths(__doc__, *PATHS)
    params = load_params()
    set_torch_threads(params.cores)
    device = pick_device(params.train.device)
    if params.split.protocol == "leave_one_corpus_out":
        return evaluate_corpus_holdout(paths, params, device)
    features, index, recipe = load_feature_cache(paths.features)
    runs = runs_of(pd.read_parquet(paths.split))
    names = run_names(runs)
    scored, records, pooled_actual, pooled_predicted = [], [], [], []
    for (repeat, fold), assignment in runs.items():
        model, card = load_checkpoint(run_model_dir(paths.models, names[repeat, fold]), device=device)
        seen, standardization = model_view(features, index, assignment, card, recipe["standardize"])
        rows, actual, predicted = predict_partition(model, seen, index, assignment, standardization, device)
        scores = classification_metrics(actual, predicted)
        scored.append({"repeat": repeat, "fold": fold, "split_seed": card.split["split_seed"],
                       "train_seed": card.seed, "test_actors": card.split["test_actors"],
                       **{k: scores[k] for k in (*SUMMARIZED, "n_test")},
                       "epochs_run": card.epochs_run, "best_epoch": card.best_epoch})
        records += [{"clip_id": clip, "repeat": repeat, "fold": fold, "actual": EMOTIONS[a], "predicted": EMOTIONS[p]}
                    for clip, a, p in zip(index["clip_id"].iloc[rows], actual, predicted)]
        pooled_actual.append(actual)
        pooled_predicted.append(predicted)
    actual, predicted = np.concatenate(pooled_actual), np.concatenate(pooled_predicted)
    split = params.split
    metrics = repeated_summary(scored, classification_metrics(actual, predicted))
    if split.protocol == "actor_kfold":
        metrics.update(test_subset=split.actor_kfold.test_subset, train_subset=split.actor_kfold.train_subset)
    metrics = {**metrics, "arch": card.arch, "protocol": split.protocol, "subset": split.subset,
               "device": card.device}
    write_json(paths.metrics, metrics)
    write_json(paths.results / split.protocol / f"{card.arch}.json",
               result_record(metrics, read_json(paths.train_metrics)))
    write_json(paths.predictions, records)
    repeats, folds = metrics["repeats"], metrics["folds_per_repeat"]
    spread = "" if repeats == 1 else f" ± {metrics['accuracy_std']:.3f}"
    runs_said = " x ".join(f"{n} {what}" for n, what in ((repeats, "repeats"), (folds, "folds")) if n > 1)
    title = (f"{card.arch}, {split.protocol} split: accuracy {metrics['accuracy']:.3f}{spread}, "
             f"macro F1 {metrics['macro_f1']:.3f}{' (' + runs_said + ', pooled below)' if runs_said else ''} "
             f"({metrics['n_test']} test clips{' each repeat' if repeats > 1 else ''})")
    plot_confusion(actual, predicted, paths.confusion, title=title)
    # Kept beside the kept metrics (see dvc.yaml), one per protocol and arch.
    plot_confusion(actual, predicted, paths.figures / split.protocol / f"{card.arch}_confusion.png", title=title)
    print(f"evaluate: accuracy {metrics['accuracy']:.4f}{spread}, macro F1 {metrics['macro_f1']:.4f} "
          f"± {metrics['macro_f1_std']:.4f} over {repeats} repeat(s) of {metrics['n_test']} test clips")


def evaluate_corpus_holdout(paths, params, device) -> None:
    """Each fold's model on its left-out corpus, batch-adapted and one recording at a time (ser.corpus_holdout)."""
    features, index, _ = load_feature_cache(paths.features)
    assignments = pd.read_parquet(paths.split)
    within = params.adaptation.within
    runs = runs_of(assignments)
    names = run_names(runs)
    scored, records = [], []
    for (repeat, fold), assignment in runs.items():
        model, card = load_checkpoint(run_model_dir(paths.models, names[repeat, fold]), device=device)
        scores, clips = score_run(model, card, features, index, assignment, device)
        corpus = card.split["test_corpus"]
        scored.append({"repeat": repeat, "fold": fold, "corpus": corpus, "train_seed": card.seed,
                       "epochs_run": card.epochs_run, "best_epoch": card.best_epoch,
                       "validation_accuracy": card.best_validation_accuracy, **scores})
        records += [{**clip, "repeat": repeat, "corpus": corpus} for clip in clips]
    # What variants are chosen on: the training corpora's validation speakers (8 classes), never a left-out corpus.
    validation = float(np.mean([run["validation_accuracy"] for run in scored]))
    metrics = {**summarize(scored), "validation_accuracy": validation, "arch": card.arch,
               "protocol": "leave_one_corpus_out",
               "standardize_within": within, "single_view": params.adaptation.single_view,
               "layers": card.model_options.get("layers", "all"),
               "statistics": card.model_options.get("statistics", list(STATISTICS)),
               # As the restored model holds them (its defaults for a card that predates an option).
               "logistic_c": getattr(model, "logistic_c", None),
               "logistic_share": getattr(model, "logistic_share", None) if getattr(model, "logistic_c", None) else None,
               "padding": padding_of(card.feature_recipe),
               "device": card.device, "runs": scored}
    write_json(paths.metrics, metrics)
    write_json(paths.results / "leave_one_corpus_out" / f"{card.arch}.json",
               result_record(metrics, read_json(paths.train_metrics)))
    write_json(paths.predictions, records)
    actual = np.array([EMOTIONS.index(r["actual"]) for r in records])
    predicted = np.array([EMOTIONS.index(r["predicted"]) for r in records])
    batch, single = metrics["batch"], metrics["single"]
    title = (f"{card.arch}, leave one corpus out ({', '.join(metrics['corpora'])}; within {within}): 4-class UA "
             f"{100 * batch['four_class_ua']:.2f} batch-adapted, {100 * single['four_class_ua']:.2f} one recording "
             f"at a time (pooled below, batch-adapted)")
    plot_confusion(actual, predicted, paths.confusion, title=title)
    plot_confusion(actual, predicted, paths.figures / "leave_one_corpus_out" / f"{card.arch}_confusion.png", title=title)
    for corpus, entry in metrics["corpora"].items():
        print(f"evaluate: {corpus}: 4-class UA {100 * entry['batch']['four_class_ua']:.2f} "
              f"± {100 * entry['batch']['four_class_ua_std']:.2f} batch-adapted, "
              f"{100 * entry['single']['four_class_ua']:.2f} ± {100 * entry['single']['four_class_ua_std']:.2f} "
              f"one at a time ({entry['batch']['n']} files)")
    print(f"evaluate: mean over corpora: 4-class UA {100 * batch['four_class_ua']:.2f} ± "
          f"{100 * batch['four_class_ua_std']:.2f} batch-adapted, {100 * single['four_class_ua']:.2f} ± "
          f"{100 * single['four_class_ua_std']:.2f} one at a time, over {metrics['repeats']} repeat(s)")


if __name__ == "__main__":
    run_stage(main)
