"""Each stage declares, in dvc.yaml, every `ser` module its script imports, directly or through others.

A static read of the imports: a module missing from a stage's deps is one DVC
would not re-run the stage for when it changes.
"""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    base = ROOT / "src" / Path(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def imported_modules(path: Path, package: str) -> set[str]:
    """The `ser` modules `path` imports, with the packages whose `__init__` they run."""
    named = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parent = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(parent + ([node.module] if node.module else []))
            named |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    ser = {name for name in named if name.split(".")[0] == "ser"}
    with_packages = {".".join(name.split(".")[:i]) for name in ser for i in range(1, len(name.split(".")) + 1)}
    return {name for name in with_packages if module_file(name)}


def imported_files(script: Path) -> set[str]:
    seen, waiting = set(), list(imported_modules(script, "ser"))
    while waiting:
        module = waiting.pop()
        if module not in seen:
            seen.add(module)
            path = module_file(module)
            waiting += imported_modules(path, module if path.name == "__init__.py" else module.rsplit(".", 1)[0])
    return {module_file(module).relative_to(ROOT).as_posix() for module in seen}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_imported_module_is_a_declared_dep(stage):
    script = ROOT / "stages" / f"{stage}.py"
    definition = STAGES[stage].get("do", STAGES[stage])  # a foreach stage's template
    deps = [dep for dep in definition["deps"] if isinstance(dep, str)]
    assert f"stages/{stage}.py" in deps and "stages/__init__.py" in deps
    missing = sorted(path for path in imported_files(script)
                     if not any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps))
    assert not missing, f"stage {stage} imports {missing} but dvc.yaml does not list them as deps"


def test_the_walk_follows_imports_through_modules():
    # train imports ser.training, which imports ser.inference, which imports ser.evaluation.
    assert "src/ser/evaluation.py" in imported_files(ROOT / "stages" / "train.py")
    assert "src/ser/__init__.py" in imported_files(ROOT / "stages" / "split.py")


@pytest.mark.parametrize("stage", ["evaluate", "cross_corpus"])
def test_serving_a_model_never_imports_the_training_loop(stage):
    """An edit to the loop re-runs train alone: the stages that serve its models neither import nor list it."""
    assert "src/ser/training.py" not in imported_files(ROOT / "stages" / f"{stage}.py")
    assert "src/ser/training.py" not in STAGES[stage].get("do", STAGES[stage])["deps"]
    assert "src/ser/training.py" not in imported_files(ROOT / "src" / "ser" / "predict.py")


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_dvc_yaml_is_the_one_place_for_a_stages_paths(stage):
    """Each stage runs as a module of the `stages` package (so `ser` is imported before numpy, see
    stages/__init__.py), and takes every path from its cmd: the script itself names none."""
    definition = STAGES[stage].get("do", STAGES[stage])
    assert definition["cmd"].startswith(f"python -m stages.{stage} ")
    literals = [node.value for node in ast.walk(ast.parse((ROOT / "stages" / f"{stage}.py").read_text()))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    named = [text for text in literals if any(part in text for part in ("data/", "reports/", "models/"))
             and "python -m" not in text]
    assert not named, f"stages/{stage}.py names paths that dvc.yaml should give it: {named}"
    given = definition["cmd"].split()
    for out in [*definition.get("outs", []), *definition.get("metrics", []), *definition.get("plots", [])]:
        path = out if isinstance(out, str) else next(iter(out))
        assert any(path == arg or path.startswith(arg + "/") for arg in given), f"{path}: not under a path of the cmd"
