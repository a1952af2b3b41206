"""FP32 training: learns, stops early, is deterministic, writes checkpoint and history."""

import pytest
import torch

from quantbench.core.files import read_json
from quantbench.data.dataset import load_dataset
from quantbench.models import resolve
from quantbench.quant.loader import load_model
from quantbench.training.train import TrainConfig, run_training, train_fp32

MODEL = {"hidden": [32, 32], "dropout": 0.0}
TRAIN = {"epochs": 15, "batch_size": 64, "lr": 3e-3, "weight_decay": 0.0, "patience": 3}


def cfg_for(ds):
    return resolve({"arch": "mlp", "hidden": [32, 32], "dropout": 0.0}, ds.n_features, ds.n_classes)


def test_training_learns_the_toy_problem(toy_dataset):
    model, history = train_fp32(toy_dataset, cfg_for(toy_dataset), TrainConfig(**TRAIN, seed=3))
    logits = model(torch.from_numpy(toy_dataset.x_test))
    acc = (logits.argmax(1).numpy() == toy_dataset.y_test).mean()
    assert acc > 0.8
    assert history[0]["val_loss"] > min(h["val_loss"] for h in history)


def test_early_stopping_keeps_the_best_epoch(toy_dataset):
    cfg = TrainConfig(**{**TRAIN, "epochs": 200, "patience": 2, "lr": 0.05}, seed=3)
    model, history = train_fp32(toy_dataset, cfg_for(toy_dataset), cfg)
    assert len(history) < 200
    best = min(history, key=lambda h: h["val_loss"])
    assert history[-1]["epoch"] - best["epoch"] == 2
    x, y = torch.from_numpy(toy_dataset.x_val), torch.from_numpy(toy_dataset.y_val)
    loss = torch.nn.functional.cross_entropy(model(x), y).item()
    assert loss == pytest.approx(best["val_loss"], rel=1e-5)


def test_same_seed_same_weights_other_seed_other_weights(toy_dataset):
    runs = [
        train_fp32(toy_dataset, cfg_for(toy_dataset), TrainConfig(**TRAIN, seed=s))[0]
        for s in (1, 1, 2)
    ]
    w = [r.layers.fc0.weight for r in runs]
    assert torch.equal(w[0], w[1])
    assert not torch.equal(w[0], w[2])


def test_run_training_writes_checkpoint_and_history(tmp_path, toy_dataset_path):
    ckpt, hist = tmp_path / "fp32.pt", tmp_path / "fp32.history.json"
    run_training(str(toy_dataset_path), MODEL, {**TRAIN, "threads": 1}, 5, str(ckpt), str(hist))
    loaded = load_model(ckpt)
    ds = load_dataset(toy_dataset_path)
    assert loaded.meta["kind"] == "fp32"
    assert loaded.meta["feature_names"] == list(ds.feature_names)
    assert loaded.spec.n_features == ds.n_features and loaded.spec.arch == "mlp"
    assert loaded.meta["model"] == {"arch": "mlp", **MODEL, "n_features": ds.n_features,
                                    "n_classes": ds.n_classes}  # fmt: skip
    history = read_json(hist)
    assert history["epochs_run"] == len(history["history"]) >= 1
    assert history["device"] == "cpu"


@pytest.mark.parametrize(
    ("key", "value"), [("epochs", 0), ("batch_size", 0), ("lr", 0.0), ("device", "tpu")]
)
def test_bad_train_settings_raise(key, value):
    with pytest.raises(ValueError, match=key):
        TrainConfig(**{**TRAIN, key: value})
