"""Frame-level attention pooling over Whisper's hidden states, screened against the uniform mean and std
that the `whisper_layers` cache holds: the same encoder pass, split code and training recipe, paired over
the same runs and seeds.

`whisper_mlp` reads each state's mean and std over the clip's frames: every frame weighs the same, the
silent and the voiced. Here a small scorer gives each frame a weight (a softmax over the clip's frames,
computed from the states' layer-normed average), and every state's mean and std are weighted by it
(attentive statistics pooling, Okabe et al., 2018) before the same clip normalization,
standardization and MLP. Its last layer starts at zero, so training starts from the uniform weights:
`uniform`, the other arm, is exactly today's features. Two more arms keep fixed-shape statistics that a
features recipe could store, trained by `train_model` as `uniform` is: `delta` adds the mean and std of
each state's frame-to-frame change, `thirds` takes the mean and std over each third of the clip.

    python benchmarks/whisper_frames.py --protocol actor_kfold --repeats 5 --arms uniform attention

A run (repeat, fold) is the same whatever the number of repeats, so the runs that the report already holds
for an arm under the same settings are kept and only the missing ones train.

The frames of the protocol's clips are encoded once into data/benchmarks/ (float16; 1.0 GB for the
1440 speech clips) and reused. Model selection is the pipeline's: the best epoch on the validation
partition (under actor_kfold, two held-out training actors); no refit, in either arm. The report goes to
reports/benchmarks/whisper_frames_<protocol>.json.
"""

from __future__ import annotations

import ser  # noqa: F401  first, before numpy loads: the same arithmetic on every CPU (see ser/__init__.py)

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from ser import usable_cores
from ser.audio import load_audio
from ser.augment import clips_and_copies
from ser.corpus import EMOTIONS
from ser.evaluation import SUMMARIZED, classification_metrics, describe_machine
from ser.features import make_recipe
from ser.features.whisper import hidden_state_statistics, normalize_per_clip
from ser.io import atomic_path, read_json, write_json
from ser.models import build_model
from ser.params import load_params, set_param
from ser.split import make_split, repeat_seed, runs_of
from ser.training import (fit_standardization, labels_for, make_loss, make_optimizer, make_scheduler,
                          partition_rows, pick_device, score_state, seed_everything, train_model)
from whisper_heads import print_summary, summarized  # the same report entries and lines as the heads' screen


def encode_frames(recipe, paths: list[str], out: Path) -> None:
    """Every clip's hidden states, frame by frame, as one float16 array [frames of all clips, states, width]
    with each clip's first frame in `offsets`: the recipe's own `hidden_states`."""
    recipe.threads = usable_cores()
    chunks, offsets = [], [0]
    for path in tqdm(paths, desc="frames (whisper_layers)", unit="clip"):
        states = recipe.hidden_states(load_audio(path, recipe.sample_rate))
        chunks.append(torch.stack(states, dim=2)[0].half().cpu().numpy())  # (frames, states, width)
        offsets.append(offsets[-1] + len(chunks[-1]))
    with atomic_path(out) as tmp:
        np.savez(tmp, frames=np.concatenate(chunks), offsets=np.asarray(offsets), paths=np.asarray(paths))


class AttentiveStatistics(nn.Module):
    """Each state's weighted mean and std over frames, one weight per frame from a small scorer."""

    def __init__(self, width: int, hidden: int = 128):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.score[-1].weight)  # uniform weights at the start: the cache's mean and std
        nn.init.zeros_(self.score[-1].bias)

    def forward(self, frames, squares, summary, mask):  # (batch, T, states, width) twice, (batch, T, width), (batch, T)
        weights = torch.softmax(self.score(summary).squeeze(-1).masked_fill(~mask, float("-inf")), dim=1)
        mean = torch.einsum("bt,btsw->bsw", weights, frames)
        second = torch.einsum("bt,btsw->bsw", weights, squares)
        std = torch.sqrt(torch.clamp(second - mean * mean, min=1e-8))
        return torch.stack([mean, std], dim=2)  # (batch, states, 2, width)


class AttentionHead(nn.Module):
    """Attentive statistics, then what whisper_mlp does to the cache's: clip normalization, the training
    rows' standardization (fitted on their uniform statistics), the MLP."""

    def __init__(self, mlp: nn.Module, width: int, standardization: dict):
        super().__init__()
        self.pool = AttentiveStatistics(width)
        self.mlp = mlp
        self.register_buffer("mean", torch.as_tensor(np.asarray(standardization["mean"], np.float32)))
        self.register_buffer("std", torch.as_tensor(np.asarray(standardization["std"], np.float32)))

    def forward(self, frames, squares, summary, mask):
        pooled = self.pool(frames, squares, summary, mask)
        pooled = (pooled - pooled.mean(-1, keepdim=True)) / (pooled.std(-1, keepdim=True, correction=0) + 1e-6)
        return self.mlp((pooled - self.mean) / self.std)


class ClipFrames:
    """Every clip's frames in float32, their squares and what the scorer reads (the states' layer-normed
    average), computed once: none of them has a parameter, and every epoch of every run reads them."""

    def __init__(self, clips: list[torch.Tensor]):
        self.frames = clips
        self.squares = [clip * clip for clip in self.frames]
        self.summary = [F.layer_norm(clip, clip.shape[-1:]).mean(1) for clip in self.frames]


class FrameBatches:
    """Padded frames of chosen clips, cut per batch to its longest clip."""

    def __init__(self, clip_frames: ClipFrames, clips: np.ndarray, labels: np.ndarray):
        self.clip_frames, self.clips = clip_frames, clips
        self.labels = torch.as_tensor(labels)

    def batch(self, chosen: np.ndarray):
        clips, data = self.clips[chosen], self.clip_frames
        lengths = torch.as_tensor([len(data.frames[clip]) for clip in clips])
        mask = torch.arange(int(lengths.max()))[None] < lengths[:, None]
        padded = [pad_sequence([getattr(data, name)[clip] for clip in clips], batch_first=True)
                  for name in ("frames", "squares", "summary")]
        return (*padded, mask, self.labels[chosen])

    def iterate(self, batch_size: int, generator: torch.Generator | None = None):
        order = (torch.randperm(len(self.labels), generator=generator) if generator is not None
                 else torch.arange(len(self.labels))).numpy()
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start:start + batch_size])


def whole_statistics(clip: torch.Tensor) -> np.ndarray:
    """[states, 2, width] of one clip's frames (frames, states, width): what the whisper_layers cache holds."""
    return hidden_state_statistics([clip.transpose(0, 1)])


def delta_statistics(clip: torch.Tensor) -> np.ndarray:
    """[2 x states, 2, width]: each state's mean and std over frames, then those of its frame-to-frame change
    (Whisper's frames are 20 ms apart), as if the change were 7 more states."""
    change = clip[1:] - clip[:-1] if len(clip) > 1 else torch.zeros_like(clip)
    return np.concatenate([whole_statistics(clip), whole_statistics(change)])


def thirds_statistics(clip: torch.Tensor) -> np.ndarray:
    """[3 x states, 2, width]: each state's mean and std over the first, the middle and the last third of
    the clip's frames (a short clip's third that holds no frame takes its nearest one)."""
    parts = [part if len(part) else np.array([min(i * len(clip) // 3, len(clip) - 1)])
             for i, part in enumerate(np.array_split(np.arange(len(clip)), 3))]
    return np.concatenate([whole_statistics(clip[part]) for part in parts])


POOLED = {"uniform": whole_statistics, "delta": delta_statistics, "thirds": thirds_statistics}


def logits_of(model, data: FrameBatches) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(*inputs) for *inputs, _ in data.iterate(256)])


def train_attention(arch_params: dict, clip_frames: ClipFrames, index, uniform, assignment, *, seed: int,
                    batch_size: int, pool_lr: float) -> dict:
    """One run of the attention arm: the selection run's best validation epoch, scored on the test clips."""
    recipe = arch_params["train"]
    rows = partition_rows(index, assignment, copies=False)
    seed_everything(seed)
    standardization = fit_standardization(uniform, rows["train"], per="element")
    mlp = build_model("whisper_mlp", uniform.shape[1:], len(EMOTIONS), **arch_params["model"])
    model = AttentionHead(mlp, uniform.shape[-1], standardization)
    parts = {name: FrameBatches(clip_frames, rows[name], labels_for(index, rows[name], assignment))
             for name in ("train", "validation", "test")}
    loss_fn = make_loss(recipe, parts["train"].labels.numpy(), "cpu")
    optimizer = make_optimizer(recipe, model.mlp.parameters())
    optimizer.add_param_group({"params": model.pool.parameters(), "lr": pool_lr})
    scheduler = make_scheduler(recipe, optimizer, int(recipe["epochs"]))
    generator = torch.Generator().manual_seed(seed)
    best = {"accuracy": -1.0, "epoch": 0, "state": None}
    for epoch in range(1, int(recipe["epochs"]) + 1):
        model.train()
        for *inputs, y in parts["train"].iterate(batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(*inputs), y).backward()
            optimizer.step()
        val_accuracy = (logits_of(model, parts["validation"]).argmax(1) == parts["validation"].labels).float().mean().item()
        if scheduler is not None:
            scheduler.step(val_accuracy) if recipe.get("scheduler") == "plateau" else scheduler.step()
        if val_accuracy > best["accuracy"]:
            best = {"accuracy": val_accuracy, "epoch": epoch,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    model.load_state_dict(best["state"])
    predicted = logits_of(model, parts["test"]).argmax(1).numpy()
    return {**classification_metrics(parts["test"].labels.numpy(), predicted), "best_epoch": best["epoch"]}


def train_pooled(arch_params: dict, statistics, index, assignment, *, seed: int, batch_size: int) -> dict:
    """One run of a fixed-shape arm: whisper_mlp's own training on statistics of the frames."""
    cpu = pick_device("cpu")
    state, card = train_model("whisper_mlp", arch_params, statistics, index, assignment, seed=seed,
                              batch_size=batch_size, device=cpu, standardize_per="element", progress=False)
    return {**score_state(state, card, statistics, index, assignment, cpu),
            "best_epoch": card["best_epoch"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="actor_kfold", choices=["random", "actor_holdout", "actor_kfold"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--arms", nargs="+", default=["uniform", "attention"], choices=[*POOLED, "attention"])
    parser.add_argument("--epochs", type=int, default=40, help="per run (the default recipe's 90 cost 2x; "
                        "its best epochs came at 4-28)")
    parser.add_argument("--pool-lr", type=float, default=1e-3, help="the scorer's learning rate (the MLP keeps its own)")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    params = load_params()
    for assignment in args.set:
        set_param(params, assignment)
    arch_params = copy.deepcopy(params["archs"]["whisper_mlp"])
    arch_params["train"].update(epochs=args.epochs, refit=False, augmented_copies=False)
    features = arch_params["features"]
    if features["recipe"] != "whisper_layers" or features.get("pad_to_30s"):
        raise SystemExit("this screens the whisper_layers recipe at the clips' own length (the default params)")
    recipe = make_recipe(features, params["audio"]["sample_rate"])

    manifest = pd.read_parquet("data/manifest.parquet")
    split = make_split(manifest, {**params["split"], "protocol": args.protocol, "repeats": args.repeats})
    runs = runs_of(split)
    used = sorted(set(split.loc[split["partition"] != "excluded", "clip_id"]))
    items = clips_and_copies(manifest[manifest["clip_id"].isin(used)], "data/raw", "data/augmented", with_copies=False)
    cache = Path("data/benchmarks") / (f"whisper_frames_{Path(features['model']).name}_trim{features.get('trim_db')}"
                                       f"_{len(items)}.npz")
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        encode_frames(recipe, list(items["path"]), cache)
        print(f"encoded {len(items)} clips in {time.perf_counter() - started:.0f} s into {cache}")
    stored = np.load(cache)
    frames, offsets = stored["frames"], stored["offsets"]
    if list(stored["paths"]) != list(items["path"]):
        raise SystemExit(f"{cache} holds other clips than this protocol's; delete it to encode again")
    index = items[["clip_id", "copy"]]  # row r of the frames' offsets is clip r
    clips = [torch.from_numpy(frames[start:end].astype(np.float32)) for start, end in zip(offsets[:-1], offsets[1:])]
    del frames  # every arm reads the float32 clips

    if features.get("normalize") not in (None, "clip"):
        raise SystemExit(f"normalize {features['normalize']!r} is not screened here")
    # Fixed-shape statistics, trained by train_model. The uniform arm's are each state's mean and std over
    # the clip's frames, as the cache's, but from the same frames as the attention arm, so that the pair
    # differs in the weighting only; the attention arm standardizes with them too.
    pooled = {}
    for arm in {"uniform"} | (set(args.arms) & set(POOLED)):
        pooled[arm] = np.stack([POOLED[arm](clip) for clip in clips])
        if features.get("normalize") == "clip":
            pooled[arm] = normalize_per_clip(pooled[arm])
    uniform = pooled["uniform"]

    clip_frames = None  # built when an attention run has to train, not when the report holds them all
    out = Path(f"reports/benchmarks/whisper_frames_{args.protocol}.json")
    report = read_json(out) if out.exists() else {}
    settings = dict(protocol=args.protocol, feature_model=features["model"], epochs=args.epochs, pool_lr=args.pool_lr,
                    params_set=args.set)
    # A run is the same (split, seed, recipe) whatever the number of repeats, so the runs an earlier report
    # holds under the same settings are kept and only the others train: 5 repeats after 2 train 3 more.
    kept = report.get("arms", {}) if all(report.get(key) == value for key, value in settings.items()) else {}
    report.update(machine=describe_machine("cpu"), repeats=args.repeats, **settings)
    report.setdefault("arms", {})
    batch_size = int(arch_params["train"].get("batch_size", params["train"]["batch_size"]))
    for arm in args.arms:
        earlier = {(run["repeat"], run["fold"]): run for run in kept.get(arm, {}).get("per_run", [])}
        scored, trained, started = [], 0, time.perf_counter()
        for (repeat, fold), assignment in tqdm(runs.items(), desc=arm, unit="run"):
            if (repeat, fold) in earlier:
                scored.append(earlier[(repeat, fold)])
                continue
            trained += 1
            seed = repeat_seed(params["train"]["seed"], repeat)
            if arm in pooled:
                result = train_pooled(arch_params, pooled[arm], index, assignment, seed=seed, batch_size=batch_size)
            else:
                clip_frames = clip_frames or ClipFrames(clips)
                result = train_attention(arch_params, clip_frames, index, uniform, assignment,
                                         seed=seed, batch_size=batch_size, pool_lr=args.pool_lr)
            scored.append({"repeat": repeat, "fold": fold, **{k: result[k] for k in (*SUMMARIZED, "n_test", "best_epoch")}})
        seconds = time.perf_counter() - started
        per_run = seconds / trained if trained else kept[arm]["seconds_per_run"]  # of the runs trained now
        report["arms"][arm] = {**summarized(scored, per_run * len(scored)), "per_run": scored}
        write_json(out, report)
        print_summary(arm, report["arms"][arm])
    baseline = {(run["repeat"], run["fold"]): run["balanced_accuracy"] for run in report["arms"].get("uniform", {}).get("per_run", [])}
    for arm in [arm for arm in report["arms"] if arm != "uniform" and baseline]:
        differences = np.array([run["balanced_accuracy"] - baseline[(run["repeat"], run["fold"])]
                                for run in report["arms"][arm]["per_run"] if (run["repeat"], run["fold"]) in baseline])
        print(f"{arm} - uniform, UA per run: {100 * differences.mean():+.2f} ± {100 * differences.std(ddof=1):.2f} "
              f"over {len(differences)} paired runs")


if __name__ == "__main__":
    main()
