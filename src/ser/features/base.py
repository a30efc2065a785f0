"""The recipe interface and the cache runner (NPY memmap + Parquet index)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import usable_cores
from ..audio import BadAudio, load_audio
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


_worker_recipe: FeatureRecipe | None = None


def _init_worker(recipe: FeatureRecipe, threads: int | None = None) -> None:
    global _worker_recipe
    recipe.threads = threads
    _worker_recipe = recipe


def _extract_file(path) -> np.ndarray:
    signal = load_audio(path, _worker_recipe.sample_rate)  # BadAudio names the file
    try:
        return _worker_recipe.extract(signal)
    except Exception as error:  # so that a stage stopped by one file says which
        raise BadAudio(f"{path}: {_worker_recipe.name} features failed ({type(error).__name__}: {error})") from error


def compute_feature_cache(recipe: FeatureRecipe, items: pd.DataFrame, out_dir: str | Path,
                          workers: int | None = None, progress: bool = True) -> None:
    """Extract features for every row of `items` (columns clip_id, copy, path) into `out_dir`.

    Rows are written straight into a float16/float32 memmap as they arrive, so
    memory stays at one batch of work whatever the corpus size.
    """
    workers = workers or usable_cores()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        array = np.lib.format.open_memmap(tmp / ARRAY_FILE, mode="w+", dtype=recipe.dtype,
                                          shape=(len(items), *recipe.shape))
        paths = list(items["path"])
        bar = tqdm(total=len(paths), desc=f"features ({recipe.name})", unit="clip", disable=not progress)
        if recipe.parallel and workers > 1:
            threads = 1  # one single-threaded extractor per worker: `workers` cores in all
            context = multiprocessing.get_context(recipe.pool_start_method)
            with context.Pool(workers, initializer=_init_worker, initargs=(recipe, threads)) as pool:
                for row, features in enumerate(pool.imap(_extract_file, paths, chunksize=8)):
                    array[row] = features
                    bar.update()
        else:
            _init_worker(recipe, threads=workers)
            for row, path in enumerate(paths):
                array[row] = _extract_file(path)
                bar.update()
        bar.close()
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
