"""Stage cross_corpus@<name>: the trained model (every run of models/, as one ensemble) on another corpus.

    python stages/cross_corpus.py <name>     # a name in cross_corpus.corpora, described under corpora in params.yaml

Writes reports/cross_corpus/<name>.json (DVC metrics: shared-class accuracy, UA and macro F1, EmoBox's
4-class accuracy and UA), <name>_predictions.json (DVC's confusion plot) and <name>_confusion.png, and
keeps a copy per protocol and arch under reports/results/cross_corpus/<name>/ (see dvc.yaml).
"""

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import sys

from ser.cross_corpus import OUTSIDE, score_corpus
from ser.evaluation import plot_confusion, result_record
from ser.io import write_json
from ser.params import load_params
from ser.predict import Predictor
from ser.stages import run_stage
from ser.training import set_torch_threads


def main():
    if len(sys.argv) != 2:
        raise ValueError("usage: python stages/cross_corpus.py <name of a corpus in cross_corpus.corpora>")
    name = sys.argv[1]
    params = load_params()
    options = params["cross_corpus"]
    if name not in options["corpora"] or name not in (params.get("corpora") or {}):
        raise KeyError(f"{name!r} must be named in cross_corpus.corpora ({options['corpora']}) and described under "
                       f"corpora ({sorted(params.get('corpora') or {})})")
    set_torch_threads(params["cores"])
    predictor = Predictor("models", device=params["train"]["device"], detect_speech=False)  # every file is speech
    # Cross-corpus means models that never heard the corpus: under leave_one_corpus_out, its own fold's.
    unheard = [i for i, card in enumerate(predictor.cards) if name not in card["split"].get("train_corpora", [])]
    if not unheard:
        raise ValueError(f"every run model in models/ trained on {name} (split.also_train_on): scoring it there is "
                         f"not cross-corpus; remove {name} from cross_corpus.corpora or from split.also_train_on")
    predictor.keep_runs(unheard)
    # The copy the download stage checked and made, inside the workspace.
    spec = {**params["corpora"][name], "folder": f"data/corpora/{name}"}
    result = score_corpus(predictor, spec, options["standardize_on"], options["skip_bad_files"], name)
    predictions = result.pop("predictions")
    card = predictor.card
    metrics = {"corpus": name, "arch": card["arch"], "protocol": card["split"]["protocol"], **result}
    for kind in ("shared", "four_class"):
        metrics[kind].pop("confusion")  # the plot carries it; DVC's metrics table shows numbers only
    write_json(f"reports/cross_corpus/{name}.json", metrics)
    write_json(f"reports/cross_corpus/{name}_predictions.json",
               [{"file": row["path"], "actual": row["actual"], "predicted": row["predicted"]} for row in predictions])
    four, shared = metrics["four_class"], metrics["shared"]
    title = (f"{card['arch']} ({metrics['protocol']}, {metrics['runs']} runs) on {name}, standardized on the "
             f"{metrics['standardized_on']}: shared-class UA {100 * shared['balanced_accuracy']:.2f}, "
             f"4-class UA {100 * four['balanced_accuracy']:.2f} ({metrics['files']} files)")
    labels = shared["classes"]
    actual = [labels.index(row["actual"]) for row in predictions]
    predicted = [(labels + [OUTSIDE]).index(row["predicted"]) for row in predictions]
    plot_confusion(actual, predicted, f"reports/cross_corpus/{name}_confusion.png", title=title,
                   labels=labels, predicted_labels=labels + [OUTSIDE])
    kept = f"{metrics['protocol']}_{card['arch']}"
    write_json(f"reports/results/cross_corpus/{name}/{kept}.json",
               result_record(metrics, device=predictor.device.type))
    plot_confusion(actual, predicted, f"reports/figures/cross_corpus/{name}/{kept}_confusion.png", title=title,
                   labels=labels, predicted_labels=labels + [OUTSIDE])
    print(f"cross_corpus {name}: 4-class UA {100 * four['balanced_accuracy']:.2f} (accuracy "
          f"{100 * four['accuracy']:.2f}, {four['n']} files); shared-class UA {100 * shared['balanced_accuracy']:.2f}, "
          f"macro F1 {100 * shared['macro_f1']:.2f} ({shared['n']} files); left out {result['left_out']}, "
          f"skipped {len(result['skipped'])}")


if __name__ == "__main__":
    run_stage(main)
