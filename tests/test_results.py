"""The README's results tables are generated from the kept result files, and must match them."""

import json
from pathlib import Path

from ser.features.whisper import padding_of
from ser.results import main, render

ROOT = Path(__file__).resolve().parents[1]


def kept(root, protocol, arch, per_repeat, **metrics):
    path = root / protocol / f"{arch}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = [{"repeat": r, "fold": 1, "epochs_run": 100, "best_epoch": 40 + r} for r in range(1, len(per_repeat) + 1)]
    path.write_text(json.dumps({"machine": "test CPU", "commit": "abc1234", "train_seconds": 90,
                                "repeats": len(per_repeat), "per_repeat": per_repeat, "runs": runs, **metrics}))


def test_tables_come_from_the_kept_files(tmp_path):
    kept(tmp_path, "random", "cnn_gru_attn", [{"accuracy": 0.8122}], accuracy=0.8122, macro_f1=0.8114,
         balanced_accuracy=0.8192)
    kept(tmp_path, "random", "deep_cnn_gpu", [{"accuracy": 0.7959}], accuracy=0.7959, macro_f1=0.8041,
         balanced_accuracy=0.8029, device="cuda")
    kept(tmp_path, "random", "whisper_mlp", [{"accuracy": a} for a in (0.86, 0.88, 0.90)], accuracy=0.88,
         accuracy_std=0.02, accuracy_ci95={"low": 0.83, "high": 0.93}, macro_f1=0.87, macro_f1_std=0.01,
         balanced_accuracy=0.89, balanced_accuracy_std=0.03)
    kept(tmp_path, "random", "deep_cnn", [{"accuracy": a} for a in (0.70, 0.71, 0.72)], accuracy=0.71,
         accuracy_std=0.01, accuracy_ci95={"low": 0.69, "high": 0.73}, macro_f1=0.7, macro_f1_std=0.01,
         balanced_accuracy=0.7, balanced_accuracy_std=0.01)
    kfold_runs = [{"balanced_accuracy": 0.7}, {"balanced_accuracy": 0.72}]
    kept(tmp_path, "actor_kfold", "whisper_mlp", kfold_runs, accuracy=0.68, accuracy_std=0.05,
         balanced_accuracy=0.71, balanced_accuracy_std=0.014, balanced_accuracy_ci95={"low": 0.58, "high": 0.84},
         balanced_accuracy_fold_std=0.04, macro_f1=0.67, macro_f1_std=0.06, folds_per_repeat=6,
         test_subset="speech", train_subset="all")
    readme = "intro\n<!-- results:random -->\nSTALE TABLE\n<!-- /results:random -->\nmiddle\n" \
             "<!-- results:actor_kfold -->\n<!-- /results:actor_kfold -->\nend\n"
    ci_rederives = [("random", "whisper_mlp")]
    text = render(readme, tmp_path, ci_rederives)
    assert "STALE TABLE" not in text and text.startswith("intro\n") and text.endswith("end\n") and "middle" in text
    # A single run says so and has no interval; several show mean ± std and the 95 % interval.
    assert "| `cnn_gru_attn` | 1 | 81.22 | 81.14 | 81.92 | one run: none | 100 (41) | 1.5 min | test CPU " \
           "| `abc1234` | acc 83 (003) | no |" in text
    assert "| `deep_cnn_gpu` | 1 | 79.59 | 80.41 | 80.29 | one run, on a GPU: none |" in text
    assert "| `whisper_mlp` | 3 | 88.00 ± 2.00 | 87.00 ± 1.00 | 89.00 ± 3.00 | 83.00–93.00 | 100 (41–43) " \
           "| 1.5 min | test CPU | `abc1234` | acc 88.59, F1 88.96 (001) | yes |" in text
    assert "| `whisper_mlp` | 2 | 68.00 ± 5.00 | 71.00 ± 1.40 | 67.00 ± 6.00 | 58.00–84.00 | 4.00 | 6 | 100 (41–42) " \
           "| speech / all | test CPU | `abc1234` | no |" in text
    # Differences are judged against the spread over repeats.
    assert "| `whisper_mlp` − `deep_cnn` | +17.00 | Welch's t, p = 0.001 | yes |" in text
    # A single run is taken as one more draw from the other's repeats: 6.78 / (2 * sqrt(4/3)) = 2.94, 2 dof.
    assert "| `whisper_mlp` − `cnn_gru_attn` | +6.78 | one run against the other's repeats, p = 0.099 | no |" in text
    assert render(text, tmp_path, ci_rederives) == text


def test_cross_corpus_table_comes_from_each_corpus_folder(tmp_path):
    record = {"corpus": "emodb", "arch": "whisper_mlp", "protocol": "actor_kfold", "runs": 30,
              "standardized_on": "corpus", "files": 454, "left_out": {"L": 81}, "machine": "test CPU",
              "commit": "abc1234", "four_class": {"balanced_accuracy": 0.697, "accuracy": 0.6873},
              "shared": {"balanced_accuracy": 0.5777, "accuracy": 0.5551, "macro_f1": 0.5903}}
    path = tmp_path / "cross_corpus" / "emodb" / "actor_kfold_whisper_mlp.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    readme = "<!-- results:cross_corpus -->\n<!-- /results:cross_corpus -->\n"
    text = render(readme, tmp_path, [])
    assert "| emodb | actor_kfold, `whisper_mlp` | 30 | corpus | 69.70 | 68.73 | 57.77 | 55.51 | 59.03 " \
           "| 454 (81 L) | test CPU | `abc1234` |" in text
    assert "| Whisper-large-v3, frozen (EmoBox) | RAVDESS → SAVEE | 4-class 66.91 |" in text
    assert render(readme, tmp_path / "empty", []).count("| emodb |") == 0  # no kept file, no row


def test_readme_matches_the_committed_results(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["--check"]) == 0, "README.md is out of date: run `python -m ser.results`"


def test_leave_one_corpus_out_rows_name_the_whisper_states_the_model_read(tmp_path):
    entry = {"n": 454, "four_class_ua": 0.7941, "four_class_ua_std": 0.0047, "shared_ua": 0.7224,
             "shared_ua_std": 0.0133}
    result = {"repeats": 5, "standardize_within": "corpus", "machine": "test CPU", "commit": "abc1234",
              "corpora": {"emodb": {"batch": entry, "single": entry}}, "batch": entry, "single": entry}
    readme = "<!-- results:leave_one_corpus_out -->\n<!-- /results:leave_one_corpus_out -->\n"
    for layers, label in (([2, 3, 4, 5], "`whisper_mlp`, states 2–5, within corpus"),
                          ([2, 3], "`whisper_mlp`, states 2, 3, within corpus"),
                          ("all", "`whisper_mlp`, within corpus"), (None, "`whisper_mlp`, within corpus")):
        path = tmp_path / str(layers) / "leave_one_corpus_out" / "whisper_mlp.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**result, **({} if layers is None else {"layers": layers})}))
        text = render(readme, path.parents[1], [])
        assert f"| {label}, 5 repeats | emodb | 454 | 79.41 ± 0.47 |" in text, layers
    for padding, label in (("clip_frames", "`whisper_mlp`, states 2–5, padded to 30 s, own frames, within corpus"),
                           ("window", "`whisper_mlp`, states 2–5, padded to 30 s, within corpus"),
                           ("none", "`whisper_mlp`, states 2–5, within corpus")):
        path = tmp_path / padding / "leave_one_corpus_out" / "whisper_mlp.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**result, "layers": [2, 3, 4, 5], "padding": padding}))
        assert f"| {label}, 5 repeats | emodb |" in render(readme, path.parents[1], []), padding
    path = tmp_path / "single_view" / "leave_one_corpus_out" / "whisper_mlp.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**result, "layers": [2, 3, 4, 5], "single_view": True}))
    assert "| `whisper_mlp`, states 2–5, within corpus + single-recording view, 5 repeats | emodb |" in \
        render(readme, path.parents[1], [])
    for share, label in ((1, "logistic member alone (C = 0.0003), "), (0.75, "logistic member's share 0.75 (C = 0.0003), "),
                         (0.5, "")):
        path = tmp_path / f"share_{share}" / "leave_one_corpus_out" / "whisper_mlp.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**result, "layers": [2, 3, 4, 5], "logistic_share": share, "logistic_c": 0.0003}))
        assert f"| `whisper_mlp`, {label}states 2–5, within corpus, 5 repeats | emodb |" in \
            render(readme, path.parents[1], []), share
    path = tmp_path / "means" / "leave_one_corpus_out" / "whisper_mlp.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**result, "layers": [2, 3, 4, 5], "statistics": ["mean"]}))
    assert "| `whisper_mlp`, states 2–5, means only, within corpus, 5 repeats | emodb |" in render(readme, path.parents[1], [])


def test_a_recipes_padding_is_read_from_its_config():
    assert padding_of({"recipe": "whisper_layers", "pad_to_30s": False}) == "none"
    assert padding_of({"recipe": "whisper_layers", "pad_to_30s": True}) == "window"
    assert padding_of({"recipe": "whisper_layers", "pad_to_30s": True, "pool_frames": "clip"}) == "clip_frames"
    assert padding_of({"recipe": "mfcc"}) == "none"
