"""Stage cross_corpus@<name>: the trained model (every run of the models folder, as one ensemble) on another corpus.

    python -m stages.cross_corpus <name> --corpus data/corpora/<name> --models models ...

<name> is in cross_corpus.corpora and described under corpora in params.yaml. Writes <name>.json to --out
(DVC metrics: shared-class accuracy, UA and macro F1, EmoBox's 4-class accuracy and UA),
<name>_predictions.json (DVC's confusion plot) and <name>_confusion.png, and keeps a copy per protocol and
arch under --results and --figures (see dvc.yaml).
"""

from ser import usable_cores
from ser.cluster import cluster_address
from ser.config import as_plain, load_params
from ser.cross_corpus import OUTSIDE, score_corpus
from ser.evaluation import plot_confusion, result_record
from ser.io import write_json
from ser.predict import Predictor
from ser.runtime import set_torch_threads
from ser.stages import run_stage, stage_paths


def main():
    paths = stage_paths(__doc__, "corpus", "models", "out", "results", "figures", positional=("name",))
    name = paths.name
    params = load_params()
    options = params.cross_corpus
    if name not in options.corpora:
        raise KeyError(f"{name!r} must be named in cross_corpus.corpora ({options.corpora})")
    set_torch_threads(params.cores)
    predictor = Predictor(paths.models, device=params.train.device, detect_speech=False)  # every file is speech
    # Cross-corpus means models that never heard the corpus: under leave_one_corpus_out, its own fold's.
    unheard = [i for i, card in enumerate(predictor.cards) if name not in card.split["train_corpora"]]
    if not unheard:
        raise ValueError(f"every run model in {paths.models} trained on {name} (split.also_train_on): scoring it there is "
                         f"not cross-corpus; remove {name} from cross_corpus.corpora or from split.also_train_on")
    predictor.keep_runs(unheard)
    # The copy the download stage checked and made, inside the workspace.
    spec = {**as_plain(params.corpora[name]), "folder": str(paths.corpus)}
    # The files' features are mapped like the features stage's clips: this machine's cores or cluster.address.
    result = score_corpus(predictor, spec, options.standardize_on, options.skip_bad_files, name,
                          workers=usable_cores(params.cores), address=cluster_address(params.cluster.address))
    predictions = result.pop("predictions")
    card = predictor.card
    metrics = {"corpus": name, "arch": card.arch, "protocol": card.split["protocol"], **result}
    for kind in ("shared", "four_class"):
        metrics[kind].pop("confusion")  # the plot carries it; DVC's metrics table shows numbers only
    write_json(paths.out / f"{name}.json", metrics)
    write_json(paths.out / f"{name}_predictions.json",
               [{"file": row["path"], "actual": row["actual"], "predicted": row["predicted"]} for row in predictions])
    four, shared = metrics["four_class"], metrics["shared"]
    title = (f"{card.arch} ({metrics['protocol']}, {metrics['runs']} runs) on {name}, standardized on the "
             f"{metrics['standardized_on']}: shared-class UA {100 * shared['balanced_accuracy']:.2f}, "
             f"4-class UA {100 * four['balanced_accuracy']:.2f} ({metrics['files']} files)")
    labels = shared["classes"]
    actual = [labels.index(row["actual"]) for row in predictions]
    predicted = [(labels + [OUTSIDE]).index(row["predicted"]) for row in predictions]
    plot_confusion(actual, predicted, paths.out / f"{name}_confusion.png", title=title,
                   labels=labels, predicted_labels=labels + [OUTSIDE])
    kept = f"{metrics['protocol']}_{card.arch}"
    write_json(paths.results / "cross_corpus" / name / f"{kept}.json",
               result_record(metrics, device=predictor.device.type))
    plot_confusion(actual, predicted, paths.figures / "cross_corpus" / name / f"{kept}_confusion.png", title=title,
                   labels=labels, predicted_labels=labels + [OUTSIDE])
    print(f"cross_corpus {name}: 4-class UA {100 * four['balanced_accuracy']:.2f} (accuracy "
          f"{100 * four['accuracy']:.2f}, {four['n']} files); shared-class UA {100 * shared['balanced_accuracy']:.2f}, "
          f"macro F1 {100 * shared['macro_f1']:.2f} ({shared['n']} files); left out {result['left_out']}, "
          f"skipped {len(result['skipped'])}")


if __name__ == "__main__":
    run_stage(main)
