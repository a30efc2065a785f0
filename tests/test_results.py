"""The README's results tables are generated from the kept result files, and must match them."""

import json
from pathlib import Path

from ser.results import main, render

ROOT = Path(__file__).resolve().parents[1]


def kept(root, protocol, arch, **metrics):
    path = root / protocol / f"{arch}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": "test CPU", "commit": "abc1234", "train_seconds": 90, **metrics}))


def test_tables_come_from_the_kept_files(tmp_path):
    kept(tmp_path, "random", "cnn_gru_attn", accuracy=0.8122, macro_f1=0.8114, balanced_accuracy=0.8192,
         epochs_run=100, best_epoch=44)
    kept(tmp_path, "actor_kfold", "whisper_mlp", accuracy=0.68, accuracy_std=0.05, balanced_accuracy=0.7,
         balanced_accuracy_std=0.04, macro_f1=0.67, macro_f1_std=0.06, test_subset="speech",
         folds=[{"epochs_run": 90, "best_epoch": 20 + k} for k in range(6)],
         train_subset="all")
    readme = "intro\n<!-- results:random -->\nSTALE TABLE\n<!-- /results:random -->\nmiddle\n" \
             "<!-- results:actor_kfold -->\n<!-- /results:actor_kfold -->\nend\n"
    ci_rederives = [("random", "cnn_gru_attn")]
    text = render(readme, tmp_path, ci_rederives)
    assert "STALE TABLE" not in text and text.startswith("intro\n") and text.endswith("end\n") and "middle" in text
    assert "| `cnn_gru_attn` | 81.22 | 81.14 | 81.92 | 100 (44) | 1.5 min | test CPU | `abc1234` " \
           "| acc 83 (003) | yes |" in text
    assert "| `whisper_mlp` | 68.00 ± 5.00 | 70.00 ± 4.00 | 67.00 ± 6.00 | 6 | 90 (20–25) | speech / all " \
           "| test CPU | `abc1234` | no |" in text
    assert render(text, tmp_path, ci_rederives) == text


def test_readme_matches_the_committed_results(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["--check"]) == 0, "README.md is out of date: run `python -m ser.results`"
