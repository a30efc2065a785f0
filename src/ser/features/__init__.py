"""Feature recipes, found by name, and the runner that caches them.

A recipe turns one mono signal at the pipeline rate into one fixed-shape
array. Training, evaluation and prediction all go through `make_recipe`, so
a model is always served with the features it was trained on.
"""

from __future__ import annotations

from typing import Callable

from .base import FeatureRecipe, compute_feature_cache, load_feature_cache

_RECIPES: dict[str, Callable[..., FeatureRecipe]] = {}


def register(name: str):
    def decorator(cls):
        _RECIPES[name] = cls
        cls.name = name
        return cls
    return decorator


def make_recipe(config: dict, sample_rate: int) -> FeatureRecipe:
    """Build a recipe from an arch's `features` params (`recipe` names it)."""
    options = dict(config)
    name = options.pop("recipe")
    if name not in _RECIPES:
        raise KeyError(f"unknown feature recipe {name!r}; known: {sorted(_RECIPES)}")
    return _RECIPES[name](sample_rate=sample_rate, **options)


from . import mfcc, spectral, whisper  # noqa: E402,F401  (registration)

__all__ = ["FeatureRecipe", "make_recipe", "register", "compute_feature_cache", "load_feature_cache"]
