"""Model variants as data: validated configs, stable names, the MLP as before, spec round trips."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from quantbench.models import ARCHS, ModelSpec, build_model, make_config, resolve


def former_mlp(n_features: int, hidden: list[int], n_classes: int, dropout: float) -> nn.Module:
    """The classifier as quantbench built it before model variants existed (reference)."""
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    width = n_features
    for i, h in enumerate(hidden):
        blocks[f"fc{i}"] = nn.Linear(width, h)
        blocks[f"relu{i}"] = nn.ReLU()
        if dropout > 0:
            blocks[f"drop{i}"] = nn.Dropout(dropout)
        width = h
    blocks["head"] = nn.Linear(width, n_classes)
    holder = nn.Module()
    holder.layers = nn.Sequential(blocks)
    return holder


@pytest.mark.parametrize("spec", [{"arch": "mlp"}, {"hidden": [256, 256], "dropout": 0.1}])
def test_mlp_is_the_former_mlp_for_the_same_seed(spec):
    torch.manual_seed(42)
    reference = former_mlp(29, [256, 256], 3, 0.1).state_dict()
    torch.manual_seed(42)
    model = build_model(spec, 29, 3)
    state = model.state_dict()
    assert list(state) == list(reference)
    assert all(torch.equal(state[k], reference[k]) for k in state)
    assert [n for n, _ in model.layers.named_children()] == [
        "fc0", "relu0", "drop0", "fc1", "relu1", "drop1", "head"
    ]  # fmt: skip


@pytest.mark.parametrize("arch", ["mlp", "cnn1d", "transformer"])
def test_built_ins_map_rows_to_logits(arch):
    torch.manual_seed(0)
    model = build_model({"arch": arch}, 29, 3).eval()
    assert model(torch.randn(5, 29)).shape == (5, 3)
    assert model(torch.randn(1, 29)).shape == (1, 3)


def test_layer_names_are_stable():
    cnn = dict(build_model({"arch": "cnn1d"}, 29, 3).named_modules())
    assert isinstance(cnn["blocks.conv0"], nn.Conv1d) and isinstance(cnn["blocks.conv1"], nn.Conv1d)
    assert {"blocks.relu0", "blocks.pool1", "fc", "fc_relu", "head"} <= set(cnn)
    tf = dict(build_model({"arch": "transformer", "layers": 3}, 29, 3).named_modules())
    for i in range(3):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "ff1", "ff2"):
            assert f"encoder.{i}.{part}" in tf
    assert tf["tokenizer"].weight.shape == (29, 32)


def test_transformer_has_one_token_per_feature_and_a_class_token():
    model = build_model({"arch": "transformer", "d_model": 8, "heads": 2}, 7, 3)
    assert model.tokenizer(torch.randn(4, 7)).shape == (4, 8, 8)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"arch": "cnn1d", "hiden": 3}, r"arch 'cnn1d' does not take hiden; it takes channels, "
         r"dropout, hidden, kernel_size, pool"),
        ({"arch": "rnn"}, r"unknown model arch 'rnn'; choose one of: mlp, cnn1d, transformer, "
         r"custom"),
        ({"arch": "mlp", "hidden": []}, r"hidden must be a non-empty list of positive sizes"),
        ({"arch": "mlp", "dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1\.0"),
        ({"arch": "cnn1d", "kernel_size": 4}, r"kernel_size must be odd .* got 4; use 5"),
        ({"arch": "cnn1d", "channels": [8, 0]}, r"channels must be a non-empty list"),
        ({"arch": "cnn1d", "pool": 0}, r"pool must be an integer >= 1, got 0"),
        ({"arch": "transformer", "heads": 3}, r"heads must divide d_model, got heads=3 for "
         r"d_model=32"),
        ({"arch": "transformer", "layers": 1.5}, r"layers must be an integer >= 1, got 1\.5"),
        ({"arch": "custom", "path": "m.py", "factory": "not a name"},
         r"factory must be a function"),
    ],
)  # fmt: skip
def test_bad_parameters_name_the_problem_in_one_line(spec, match):
    with pytest.raises(ValueError, match=match) as err:
        make_config(spec)
    assert "\n" not in str(err.value)


def test_too_much_pooling_for_the_features_is_refused():
    with pytest.raises(ValueError, match=r"cnn1d: 3 features leave no positions after block 1"):
        build_model({"arch": "cnn1d", "channels": [4, 4]}, 3, 2)


@pytest.mark.parametrize("arch", ["mlp", "cnn1d", "transformer"])
def test_spec_round_trips_through_its_dict(arch):
    spec = resolve({"arch": arch}, 29, 3)
    d = spec.to_dict()
    assert d["arch"] == arch and d["n_features"] == 29 and d["n_classes"] == 3
    assert ModelSpec.from_dict(d) == spec
    assert set(ARCHS) == {"mlp", "cnn1d", "transformer", "custom"}


def test_spec_checks_the_data_shape():
    with pytest.raises(ValueError, match="n_classes must be >= 2, got 1"):
        resolve({"arch": "mlp"}, 29, 1)
    with pytest.raises(ValueError, match="n_features must be a positive int, got 0"):
        resolve({"arch": "mlp"}, 0, 3)
