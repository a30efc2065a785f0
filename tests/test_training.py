import numpy as np
import pandas as pd
import pytest
import torch

from ser.checkpoint import load_checkpoint, restore_model, save_checkpoint
from ser.config import Arch, parse
from ser.corpus import EMOTIONS, make_name, parse_name
from ser.inference import Batches, predict_logits, predict_partition
from ser.rows import refit_rows
from ser.split import assign_partitions
from ser.standardization import fit_standardization
from ser.training import train_model

FEATURES = {"recipe": "whisper_embedding", "model": "x", "sample_rate": 16000, "standardize": "channel"}  # what the card says of the cache
MODEL = {"hidden": [32], "dropout": 0.1}
TRAIN = {"augmented_copies": True, "epochs": 6, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4,
         "label_smoothing": 0.1, "class_weights": "balanced", "scheduler": "plateau",
         "plateau_patience": 1, "plateau_factor": 0.5}


def arch(model: dict | None = None, **train) -> Arch:
    """An arch section as params.yaml would give it: whisper_mlp's MODEL and TRAIN, with a test's changes."""
    return parse(Arch, {"features": {"recipe": "whisper_embedding"}, "model": {**MODEL, **(model or {})},
                        "train": {**TRAIN, **train}}, "archs.test")


RECIPE = arch()


def toy_data(width=16):
    """Clips of 6 actors x 8 emotions x 2 statements; each emotion a cluster; 2 copies per clip."""
    names = [make_name(1, e, 1, s, 1, a) for a in range(1, 7) for e in range(1, 9) for s in (1, 2)]
    manifest = pd.DataFrame([parse_name(n).__dict__ for n in names])
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(8, width))
    rows, features = [], []
    for clip in manifest.itertuples():
        for copy in range(3):
            rows.append((clip.clip_id, copy))
            features.append(centers[EMOTIONS.index(clip.emotion)] + rng.normal(0, 1, width))
    index = pd.DataFrame(rows, columns=["clip_id", "copy"])
    return manifest, index, np.asarray(features, dtype=np.float32) * 5 + 2


def test_training_is_deterministic_and_learns():
    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "random", test_fraction=0.25, validation_fraction=0.2, seed=1)
    state1, card1 = train_model("whisper_mlp", RECIPE, features, index, split, seed=3, batch_size=16,
                                device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    state2, card2 = train_model("whisper_mlp", RECIPE, features, index, split, seed=3, batch_size=16,
                                device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    for key in state1:
        torch.testing.assert_close(state1[key], state2[key], rtol=0, atol=0)
    assert card1.best_validation_accuracy == card2.best_validation_accuracy >= 0.8
    assert card1.epochs_run == 6 and 1 <= card1.best_epoch <= 6
    assert card1.train_rows == 3 * card1.train_clips
    state3, _ = train_model("whisper_mlp", RECIPE, features, index, split, seed=4, batch_size=16,
                            device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    assert any(not torch.equal(state1[k], state3[k]) for k in state1)


def test_the_epoch_is_chosen_on_the_validation_clips_never_the_test_clips():
    """Test clips whose features say nothing (zeros): a choice made on them would read about chance, and the
    kept model's accuracy on the validation clips would not be the one the card reports."""
    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "random", test_fraction=0.25, validation_fraction=0.2, seed=1)
    tested = index["clip_id"].isin(split.loc[split["partition"] == "test", "clip_id"]).to_numpy()
    features[tested] = 0.0
    state, card = train_model("whisper_mlp", RECIPE, features, index, split, seed=3, batch_size=16,
                              device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    model = restore_model(card, state, "cpu")
    _, actual, predicted = predict_partition(model, features, index, split, card.standardization, "cpu",
                                             partition="validation")
    assert card.validation_clips == len(actual) == (split["partition"] == "validation").sum()
    assert card.best_validation_accuracy == pytest.approx((actual == predicted).mean(), abs=1e-6)
    assert card.best_validation_accuracy >= 0.8


def test_early_stopping_stops():
    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "random", seed=1)
    recipe = arch(epochs=50, early_stopping_patience=2, scheduler="none", lr=1e-9)
    _, card = train_model("whisper_mlp", recipe, features, index, split, seed=3, batch_size=16,
                          device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    assert card.epochs_run == card.best_epoch + 2 < 50


def test_standardization_uses_training_rows_only():
    features = np.zeros((4, 2, 3), dtype=np.float32)
    features[:2, 0] = 1.0       # training rows: channel 0 all ones
    features[2:] = 100.0        # held-out rows must not shift the statistics
    stats = fit_standardization(features, np.array([0, 1]))
    assert stats["mean"] == pytest.approx([1.0, 0.0])


def test_checkpoint_reloads_without_params(tmp_path):
    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "random", seed=1)
    state, card = train_model("whisper_mlp", RECIPE, features, index, split, seed=3, batch_size=16,
                              device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    save_checkpoint(tmp_path, state, card)
    model, loaded = load_checkpoint(tmp_path)
    assert loaded.arch == "whisper_mlp" and loaded.labels == list(EMOTIONS)
    assert loaded.feature_recipe["recipe"] == "whisper_embedding" and loaded == card
    batch = Batches(torch.from_numpy(features[:10]), torch.zeros(10, dtype=torch.long))
    from ser.models import build_model
    fresh = build_model("whisper_mlp", (16,), 8, **MODEL)
    fresh.load_state_dict(state)
    torch.testing.assert_close(predict_logits(model, batch, loaded.standardization, "cpu"),
                               predict_logits(fresh.eval(), batch, card.standardization, "cpu"))
    with pytest.raises(FileNotFoundError, match="dvc repro"):
        load_checkpoint(tmp_path / "nothing")


def test_refit_trains_on_training_and_validation_clips_never_a_test_clip():
    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "random", test_fraction=0.25, validation_fraction=0.2, seed=1)
    rows = refit_rows(index, split, copies=True)
    partition = split.set_index("clip_id")["partition"]
    refit_clips = set(index["clip_id"].iloc[rows])
    assert refit_clips == set(partition[partition != "test"].index)
    assert len(rows) == 3 * len(refit_clips)  # the validation clips' copies too
    assert set(index["clip_id"].iloc[refit_rows(index, split, copies=False)]) == refit_clips
    assert (index["copy"].iloc[refit_rows(index, split, copies=False)] == 0).all()

    recipe = arch(refit=True)
    selected, card = train_model("whisper_mlp", RECIPE, features, index, split, seed=3, batch_size=16,
                                 device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    refitted, refit_card = train_model("whisper_mlp", recipe, features, index, split, seed=3, batch_size=16,
                                       device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    again, _ = train_model("whisper_mlp", recipe, features, index, split, seed=3, batch_size=16,
                           device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    assert refit_card.best_epoch == card.best_epoch  # the selection run is the same run
    assert refit_card.refit == {"epochs": card.best_epoch, "train_clips": len(refit_clips),
                                   "train_rows": 3 * len(refit_clips)}
    assert refit_card.standardization == fit_standardization(features, np.sort(rows))
    assert any(not torch.equal(selected[k], refitted[k]) for k in selected)
    for key in refitted:
        torch.testing.assert_close(refitted[key], again[key], rtol=0, atol=0)
    model = restore_model(refit_card, refitted, torch.device("cpu"))
    _, actual, predicted = predict_partition(model, features, index, split, refit_card.standardization, "cpu")
    assert (actual == predicted).mean() >= 0.8


@pytest.mark.parametrize("refit", [False, True])
def test_logistic_member_fits_the_kept_rows_beside_an_unchanged_mlp(refit):
    from sklearn.linear_model import LogisticRegression
    from ser.rows import final_model_rows, labels_for, partition_rows
    from ser.training import class_weight_values

    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "random", test_fraction=0.25, validation_fraction=0.2, seed=1)
    plain = arch(refit=refit)
    with_member = arch({"logistic_c": 0.05}, refit=refit)
    runs = [train_model("whisper_mlp", recipe, features, index, split, seed=3, batch_size=16,
                        device=torch.device("cpu"), progress=False, feature_recipe=FEATURES) for recipe in (with_member, with_member, plain)]
    (state, card), (again, _), (mlp_alone, plain_card) = runs
    for key in state:
        torch.testing.assert_close(state[key], again[key], rtol=0, atol=0)
    assert set(state) - set(mlp_alone) == {"logistic_weight", "logistic_bias", "logistic_fitted"}
    for key in mlp_alone:  # the member draws nothing from the seeded generators
        torch.testing.assert_close(state[key], mlp_alone[key], rtol=0, atol=0)

    # The member is scikit-learn's fit of the rows the kept MLP trained on, standardized as it was.
    rows = np.sort(refit_rows(index, split, copies=True) if refit else partition_rows(index, split)["train"])
    assert np.array_equal(np.sort(final_model_rows(index, split, plain.train)), rows)
    assert card.logistic["train_rows"] == len(rows) and card.logistic["converged"]
    assert not set(index["clip_id"].iloc[rows]) & set(split.loc[split["partition"] == "test", "clip_id"])
    mean, std = (np.asarray(card.standardization[k]) for k in ("mean", "std"))
    labels = labels_for(index, rows, split)
    weights = class_weight_values(RECIPE.train, labels)
    expected = LogisticRegression(C=0.05, max_iter=1000).fit(
        ((features[rows] - mean) / std).astype(np.float64), labels, sample_weight=weights[labels])
    torch.testing.assert_close(state["logistic_weight"], torch.from_numpy(expected.coef_).float(), rtol=0, atol=1e-4)

    # Its prediction: the log of the two members' mean probabilities.
    model, alone = restore_model(card, state, "cpu"), restore_model(plain_card, mlp_alone, "cpu")
    x = (torch.from_numpy(features[:12]) - torch.from_numpy(mean).float()) / torch.from_numpy(std).float()
    linear = torch.from_numpy(expected.predict_proba(x.double().numpy())).float()
    with torch.no_grad():
        torch.testing.assert_close(model(x).exp(), (alone(x).softmax(1) + linear) / 2, rtol=0, atol=1e-4)


def test_logistic_member_gives_no_probability_to_a_class_it_never_saw():
    from ser.models import build_model
    model = build_model("whisper_mlp", (2, 2, 4), 8, hidden=[4], logistic_c=1.0)
    inputs = torch.randn(40, 2, 2, 4, generator=torch.Generator().manual_seed(0))
    labels = np.repeat([2, 5], 20)  # two classes: scikit-learn returns one row of coefficients
    inputs[labels == 5] += 2
    summary = model.fit_logistic(inputs, labels)
    assert summary["train_rows"] == 40 and bool(model.logistic_fitted)
    probabilities = model.logistic_logits(inputs).softmax(1)
    assert probabilities[:, [0, 1, 3, 4, 6, 7]].max() < 1e-9
    assert (probabilities.argmax(1).numpy() == labels).mean() >= 0.9


def test_a_logistic_member_needs_a_positive_c():
    from ser.models import build_model
    with pytest.raises(ValueError, match="logistic_c is 0"):
        build_model("whisper_mlp", (2, 2, 4), 8, logistic_c=0)


def test_a_recipe_without_copies_trains_on_the_original_clips_only():
    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "random", test_fraction=0.25, validation_fraction=0.2, seed=1)
    _, card = train_model("whisper_mlp", arch(augmented_copies=False, epochs=2), features, index, split, seed=3,
                          batch_size=16, device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    assert card.train_rows == card.train_clips  # no augmented copy reached training
    assert card.trained_on["augmented_copies"] == 0


@pytest.mark.parametrize("emptied", ["train", "validation"])
def test_a_split_that_leaves_no_training_or_no_validation_clips_is_refused(emptied):
    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "random", test_fraction=0.25, validation_fraction=0.2, seed=1)
    split.loc[split["partition"] == emptied, "partition"] = "test"
    with pytest.raises(ValueError, match="no training or no validation clips"):
        train_model("whisper_mlp", RECIPE, features, index, split, seed=3, batch_size=16,
                    device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)


class RecordingLogger:
    """What train_model hands DVCLive's Live: each metric's value at each step."""

    def __init__(self):
        self.step, self.values = 0, {}

    def log_metric(self, name, value):
        self.values.setdefault(name, {})[self.step] = value

    def make_summary(self):
        pass


def learning_rates(recipe, validation_zeroed=False) -> tuple[list[float], list[float]]:
    """Each epoch's learning rate after the scheduler's step, and each epoch's validation accuracy."""
    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "random", test_fraction=0.25, validation_fraction=0.2, seed=1)
    if validation_zeroed:  # a validation accuracy that cannot improve after the first epoch
        validating = index["clip_id"].isin(split.loc[split["partition"] == "validation", "clip_id"]).to_numpy()
        features[validating] = 0.0
    logger = RecordingLogger()
    train_model("whisper_mlp", recipe, features, index, split, seed=3, batch_size=16, device=torch.device("cpu"),
                progress=False, feature_recipe=FEATURES, logger=logger)
    return list(logger.values["lr"].values()), list(logger.values["validation/accuracy"].values())


def test_the_learning_rate_follows_the_recipes_schedule():
    """The schedule decides which epochs the refit replays; a scheduler left out, or stepped on the wrong
    count, trains other models than the recipe says."""
    plateau, accuracy = learning_rates(arch(epochs=6, scheduler="plateau", plateau_patience=1, plateau_factor=0.5,
                                            refit=False), validation_zeroed=True)
    assert len(set(accuracy)) == 1  # the stall the plateau schedule acts on
    assert plateau == pytest.approx([3e-3, 3e-3, 1.5e-3, 1.5e-3, 7.5e-4, 7.5e-4])
    cosine, _ = learning_rates(arch(epochs=6, scheduler="cosine", refit=False))
    assert cosine == pytest.approx([3e-3 * (1 + np.cos(np.pi * epoch / 6)) / 2 for epoch in range(1, 7)])
    constant, _ = learning_rates(arch(epochs=6, scheduler="none", refit=False), validation_zeroed=True)
    assert constant == pytest.approx([3e-3] * 6)


def test_the_curves_reach_dvclive_under_the_runs_prefix_with_the_refit_beside_them():
    """What `dvc plots` shows of a run: every epoch's metrics at steps 0..epochs-1 under the run's prefix, the
    refit's own curves, and DVCLive's step left at the selection run's last epoch."""
    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "random", test_fraction=0.25, validation_fraction=0.2, seed=1)
    logger = RecordingLogger()
    _, card = train_model("whisper_mlp", arch(epochs=5, refit=True), features, index, split, seed=3, batch_size=16,
                          device=torch.device("cpu"), progress=False, feature_recipe=FEATURES, logger=logger,
                          metric_prefix="fold_2/")
    selection = ["train/loss", "train/accuracy", "validation/loss", "validation/accuracy", "lr"]
    assert sorted(logger.values) == sorted([f"fold_2/{name}" for name in selection]
                                           + ["fold_2/refit/train/loss", "fold_2/refit/train/accuracy"])
    for name in selection:
        assert list(logger.values[f"fold_2/{name}"]) == [0, 1, 2, 3, 4]
    for name in ("refit/train/loss", "refit/train/accuracy"):
        assert list(logger.values[f"fold_2/{name}"]) == list(range(card.best_epoch))
    assert all(isinstance(value, float) and np.isfinite(value)
               for curve in logger.values.values() for value in curve.values())
    assert logger.step == 4
    assert card.device == "cpu" and card.refit["epochs"] == card.best_epoch


@pytest.mark.parametrize("refit", [False, True])
def test_a_second_view_trains_beside_the_first_which_alone_selects_and_standardizes(refit):
    manifest, index, informative = toy_data()
    split = assign_partitions(manifest, "random", test_fraction=0.25, validation_fraction=0.2, seed=1)
    blind = np.random.default_rng(5).normal(size=informative.shape).astype(np.float32)  # no emotion in it
    recipe = arch(refit=refit, augmented_copies=False)
    common = dict(seed=3, batch_size=16, device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    alone_state, alone = train_model("whisper_mlp", recipe, blind, index, split, **common)
    both_state, both = train_model("whisper_mlp", recipe, blind, index, split, second_view=informative, **common)
    rows = refit_rows(index, split, copies=False) if refit else None
    # The standardization is the first view's, on the rows the kept model trained on.
    expected = fit_standardization(blind, np.sort(rows)) if refit else alone.standardization
    assert both.standardization == alone.standardization == expected
    # Selection reads the first view alone: blind there, whatever the second taught.
    assert both.best_validation_accuracy < 0.5 and alone.best_validation_accuracy < 0.5

    def accuracy(state, card):
        model = restore_model(card, state, torch.device("cpu"))
        _, actual, predicted = predict_partition(model, informative, index, split, card.standardization, "cpu")
        return (actual == predicted).mean()

    assert accuracy(both_state, both) >= 0.7 > 0.4 > accuracy(alone_state, alone)


def test_the_logistic_share_weights_the_members_average():
    from ser.models import build_model
    generator = torch.Generator().manual_seed(0)
    inputs, labels = torch.randn(48, 2, 2, 4, generator=generator), np.arange(48) % 8
    model = build_model("whisper_mlp", (2, 2, 4), 8, hidden=[4], logistic_c=1.0, logistic_share=0.75).eval()
    model.fit_logistic(inputs, labels)
    with torch.no_grad():
        network = model.net(model.selected(inputs).flatten(1)).softmax(1)
        member = model.logistic_logits(inputs).softmax(1)
        torch.testing.assert_close(model(inputs).exp(), 0.75 * member + 0.25 * network, rtol=0, atol=1e-6)
    assert model.trains_by_gradient
    for share, problem in ((0, "logistic_share is 0"), (1.5, "logistic_share is 1.5"), (True, "logistic_share is True"),
                           ("half", "logistic_share is 'half'")):
        with pytest.raises(ValueError, match=problem):
            build_model("whisper_mlp", (2, 2, 4), 8, logistic_c=1.0, logistic_share=share)
    with pytest.raises(ValueError, match="logistic_c is null"):
        build_model("whisper_mlp", (2, 2, 4), 8, logistic_share=1)


@pytest.mark.parametrize("refit", [False, True])
def test_the_logistic_member_alone_trains_no_epoch_and_is_selected_on_validation(refit):
    from sklearn.linear_model import LogisticRegression
    from ser.rows import final_model_rows, labels_for, partition_rows
    from ser.training import class_weight_values

    manifest, index, features = toy_data()
    split = assign_partitions(manifest, "random", test_fraction=0.25, validation_fraction=0.2, seed=1)
    alone = arch({"logistic_c": 0.05, "logistic_share": 1}, refit=refit)
    state, card = train_model("whisper_mlp", alone, features, index, split, seed=3, batch_size=16,
                              device=torch.device("cpu"), progress=False, feature_recipe=FEATURES)
    assert card.epochs_run == 0 and card.best_epoch == 0
    assert card.refit is None if not refit else card.refit["epochs"] == 0

    def member(rows):
        mean, std = (fit_standardization(features, rows)[key] for key in ("mean", "std"))
        labels = labels_for(index, rows, split)
        weights = class_weight_values(alone.train, labels)
        x = ((features[rows] - np.asarray(mean)) / np.asarray(std)).astype(np.float64)
        return LogisticRegression(C=0.05, max_iter=1000).fit(x, labels, sample_weight=weights[labels]), mean, std

    # Chosen on validation clips it never fitted: its accuracy there is the training rows' fit's.
    train_rows = np.sort(partition_rows(index, split, copies=True)["train"])
    selection, mean, std = member(train_rows)
    validation = np.sort(partition_rows(index, split)["validation"])
    x = (features[validation] - np.asarray(mean)) / np.asarray(std)
    expected = (selection.predict(x.astype(np.float64)) == labels_for(index, validation, split)).mean()
    assert card.best_validation_accuracy == pytest.approx(expected, abs=1e-6) and expected >= 0.8
    # The kept model predicts what the member fitted on the kept rows predicts, the network aside.
    kept_rows = np.sort(final_model_rows(index, split, alone.train))
    kept, mean, std = member(kept_rows)
    model = restore_model(card, state, "cpu")
    test = (torch.from_numpy(features[:24]) - torch.tensor(mean).float()) / torch.tensor(std).float()
    with torch.no_grad():
        torch.testing.assert_close(model(test).exp(), torch.from_numpy(kept.predict_proba(test.double().numpy())).float(),
                                   rtol=0, atol=1e-4)
