"""What params.yaml may say of an arch beyond its types: its model and feature options, checked against
the classes they are passed to.

Apart from ser.config because it imports every arch and feature recipe: only the stages that build them
(features, train) run this check, so an edit to an arch does not re-run the stages before them.
"""

from __future__ import annotations

import inspect

from . import features, models
from .config import Arch, Params, ParamsError, key_path, require


def _check_options(cls, options: dict, where: str, given_by_code: set[str]) -> None:
    """Every key of `options` a named parameter of `cls.__init__`, but those the code passes itself.
    A **kwargs does not widen that: FeatureRecipe's only records its options, so a key no recipe reads would
    rename the features cache and change nothing else."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    known = [p.name for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
             if p.kind in kinds and p.name not in given_by_code]
    for key in options:
        require(key in known, key_path(where, key), f"unknown option of {cls.__name__} (known: {', '.join(known)})")


def check_arch(name: str, arch: Arch) -> None:
    where = f"archs.{name}"
    require(name in models._ARCHS, where, f"not a registered arch (known: {', '.join(models.arch_names())})")
    _check_options(models.arch_class(name), arch.model, f"{where}.model", {"input_shape", "n_classes"})
    recipe = arch.features.get("recipe")
    require("recipe" in arch.features, f"{where}.features.recipe", "missing")
    require(isinstance(recipe, str) and recipe in features._RECIPES, f"{where}.features.recipe",
             f"expected one of {', '.join(sorted(features._RECIPES))}, got {recipe!r}")
    options = {key: value for key, value in arch.features.items() if key != "recipe"}
    _check_options(features._RECIPES[recipe], options, f"{where}.features", {"sample_rate"})


def check_archs(params: Params, source: str = "params.yaml") -> None:
    """Every section under `archs`, whichever is selected: a misspelt option of another arch fails now too."""
    try:
        for name, arch in params.archs.items():
            check_arch(name, arch)
    except ParamsError as error:
        raise ParamsError(f"{source}: {error}") from None
