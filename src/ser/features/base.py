"""The recipe interface and the cache runner (NPY memmap + Parquet index)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import usable_cores
from ..audio import BadAudio, load_audio
from ..cluster import map_files
from ..io import atomic_path

ARRAY_FILE, INDEX_FILE, RECIPE_FILE = "features.npy", "index.parquet", "recipe.json"
# What recipe.json records beside the recipe's own options (not arguments of `make_recipe`);
# weights_sha256 comes from `provenance`, where a recipe has one.
CACHE_KEYS = ("sample_rate", "shape", "standardize", "weights_sha256")


class FeatureRecipe:
    """One signal in, one fixed-shape array out. Subclasses set `shape` and `dtype`."""

    name: str = ""
    dtype = np.float16
    # False for a recipe that must run in one process (a model on the GPU).
    parallel = True
    # Threads the recipe may use itself: the whole machine in one process, one per worker in a pool.
    threads: int | None = None
    # "spawn" for a recipe whose library hangs in a forked child once its parent has used it
    # (CTranslate2's thread pool does); "fork" starts workers faster.
    pool_start_method = "fork"
    # How training standardizes it: per "channel" (axis 0 of one clip's array: spectrogram bands,
    # stacked maps) or per "element" (every value on its own: pooled embeddings, layer statistics).
    standardize = "channel"

    def __init__(self, sample_rate: int, **options):
        self.sample_rate = sample_rate
        self.options = options

    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def extract(self, signal: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def config(self) -> dict:
        """What is needed to rebuild this recipe with `make_recipe` (stored with the model)."""
        return {"recipe": self.name, **self.options}

    def provenance(self) -> dict:
        """What recipe.json (and so a model card) records of the inputs the options only name, such as a
        model's weights ({"weights_sha256": ...}): the same options can name other bytes elsewhere."""
        return {}


def extract_file(recipe: FeatureRecipe, path) -> np.ndarray:
    """One file's features: the task ser.cluster maps over the files, in this process or on a worker."""
    signal = load_audio(path, recipe.sample_rate)  # BadAudio names the file
    try:
        return recipe.extract(signal)
    except Exception as error:  # so that a stage stopped by one file says which
        raise BadAudio(f"{path}: {recipe.name} features failed ({type(error).__name__}: {error})") from error


def map_recipe(task, recipe: FeatureRecipe, payload, paths: list, *, workers: int, address: str = "",
               desc: str = "", unit: str = "file", progress: bool = True):
    """ser.cluster.map_files of `task(payload, path)` over `paths` for a task that runs `recipe`: the recipe's own
    process rules (a GPU recipe stays in this process, its pool start method) and one single-threaded extractor
    per worker process (`workers` cores in all, or one a Dask worker thread), or the whole machine in this
    process. Sets `recipe.threads` accordingly; `payload` carries the recipe to the workers."""
    if address:
        paths = [os.path.abspath(path) for path in paths]  # a worker's working directory is not ours
    recipe.threads = 1 if address or (recipe.parallel and workers > 1) else workers
    return map_files(task, payload, paths, workers=workers, address=address, parallel=recipe.parallel,
                     start_method=recipe.pool_start_method, desc=desc, unit=unit, progress=progress,
                     batch_size=8, readable=str)


def compute_feature_cache(recipe: FeatureRecipe, items: pd.DataFrame, out_dir: str | Path,
                          workers: int | None = None, progress: bool = True, address: str = "") -> None:
    """Extract features for every row of `items` (columns clip_id, copy, path) into `out_dir`.

    Rows are written straight into a float16/float32 memmap as they arrive, each at its own row, so memory
    stays at one batch of work whatever the corpus size, and the cache is the same bits whatever order the
    workers finish in. `address` is params' cluster.address (ser.cluster): "" runs on this machine's
    `workers` cores, anything else on Dask workers, each loading the model once.
    """
    workers = workers or usable_cores()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        array = np.lib.format.open_memmap(tmp / ARRAY_FILE, mode="w+", dtype=recipe.dtype,
                                          shape=(len(items), *recipe.shape))
        for row, features in map_recipe(extract_file, recipe, recipe, list(items["path"]), workers=workers,
                                        address=address, desc=f"features ({recipe.name})", unit="clip",
                                        progress=progress):
            array[row] = features
        array.flush()
        del array
        items[["clip_id", "copy"]].to_parquet(tmp / INDEX_FILE, index=False)
        (tmp / RECIPE_FILE).write_text(json.dumps({**recipe.config(), **recipe.provenance(),
                                                   "sample_rate": recipe.sample_rate,
                                                   "shape": list(recipe.shape),
                                                   "standardize": recipe.standardize}, indent=2) + "\n")


def load_feature_cache(cache_dir: str | Path) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """(features memmap, index with clip_id/copy per row, recipe config)."""
    cache_dir = Path(cache_dir)
    array = np.load(cache_dir / ARRAY_FILE, mmap_mode="r")
    index = pd.read_parquet(cache_dir / INDEX_FILE)
    recipe = json.loads((cache_dir / RECIPE_FILE).read_text())
    return array, index, recipe
