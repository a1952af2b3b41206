"""arch: custom: the user's module from a file, every bad input in one line, checkpoints that
refuse a changed file, the worked example, and models only some kinds can quantize."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from quantbench.models import build_model, resolve
from quantbench.quant.ao import fx
from quantbench.quant.loader import load_model
from quantbench.quant.methods import registry as methods
from quantbench.training.checkpoint import CheckpointError, save_checkpoint
from tests._toy import EXAMPLE, checkpoint_meta, operators, predict, toy

GOOD = """
import torch
from torch import nn

def build(n_features, n_classes, width=16):
    return nn.Sequential(nn.Linear(n_features, width), nn.ReLU(), nn.Linear(width, n_classes))

def helper():
    return 1
"""


def write(tmp_path: Path, source: str, name: str = "user_model.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return str(path)


def spec(path: str, factory: str = "build", **params) -> dict:
    return {"arch": "custom", "path": path, "factory": factory, "params": params}


def one_line_error(path_spec: dict, match: str, n_features: int = 6) -> None:
    with pytest.raises(ValueError, match=match) as err:
        build_model(path_spec, n_features, 3)
    assert "\n" not in str(err.value)


def test_a_good_factory_builds_the_users_module(tmp_path):
    model = build_model(spec(write(tmp_path, GOOD), width=8), 6, 3)
    assert model[0].out_features == 8 and model(torch.zeros(2, 6)).shape == (2, 3)


@pytest.mark.parametrize(
    ("source", "factory", "params", "match"),
    [
        (GOOD, "make", {}, r"defines no function 'make'; set factory to one of: build, helper"),
        (GOOD, "build", {"depth": 2}, r"factory build .* does not take parameter 'depth'; "
         r"it takes width"),
        ("def build(n_features):\n    pass\n", "build", {},
         r"has the wrong signature; it must be factory\(n_features, n_classes, \*\*params\)"),
        ("def build(n_features, n_classes, width):\n    pass\n", "build", {},
         r"needs parameter 'width'; set it under the model's params"),
        ("def build(n_features, n_classes):\n    return 3\n", "build", {},
         r"returned int, not a torch.nn.Module"),
        ("def build(n_features, n_classes):\n    raise RuntimeError('no')\n", "build", {},
         r"raised RuntimeError: no; fix the factory or its params"),
        ("import torch\ndef build(n_features, n_classes):\n    return torch.nn.Linear(4, 3)\n",
         "build", {}, r"fails on a probe batch of shape \(4, 6\)"),
        ("import torch\ndef build(n_features, n_classes):\n"
         "    return torch.nn.Linear(n_features, 5)\n", "build", {},
         r"returns shape \(4, 5\) for 4 rows; expected \(4, 3\)"),
        ("import nonexistent_module_xyz\n", "build", {},
         r"importing model file .* failed \(ModuleNotFoundError: No module named"),
    ],
)  # fmt: skip
def test_each_bad_input_is_one_line(tmp_path, source, factory, params, match):
    one_line_error(spec(write(tmp_path, source), factory, **params), match)


def test_missing_file_names_the_fix(tmp_path):
    one_line_error(spec(str(tmp_path / "nope.py")), r"model file .*nope.py not found .*set path")


def test_checkpoint_stores_the_file_hash_and_refuses_a_changed_file(tmp_path):
    path = write(tmp_path, GOOD)
    model_spec = resolve(spec(path), 6, 3)
    assert len(model_spec.to_dict()["sha256"]) == 64
    torch.manual_seed(0)
    model = model_spec.build().eval()
    meta = {**checkpoint_meta("fp32", {}, model_spec), "feature_names": list("abcdef")}
    save_checkpoint(tmp_path / "fp32.pt", meta, model.state_dict())
    x = torch.randn(4, 6)
    assert torch.equal(load_model(tmp_path / "fp32.pt").module(x), model(x))
    Path(path).write_text(GOOD.replace("width=16", "width=17"), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"fp32.pt: model file .* changed since this model "
                       r"was trained .*rerun the workflow") as err:  # fmt: skip
        load_model(tmp_path / "fp32.pt")
    assert "\n" not in str(err.value)


def test_the_worked_example_trains_and_quantizes():
    t = toy(arch="custom")
    accuracy = (predict(t.model, t.x_test) == t.y_test).float().mean().item()
    assert accuracy > 0.8
    assert resolve({"arch": "custom", "path": str(EXAMPLE), "factory": "residual_mlp"}, 30, 3)


UNTRACEABLE = """
import torch
from torch import nn

class Branchy(nn.Module):
    def __init__(self, n_features, n_classes):
        super().__init__()
        self.fc = nn.Linear(n_features, 16)
        self.head = nn.Linear(16, n_classes)

    def forward(self, x):
        h = torch.relu(self.fc(x))
        if h.sum() > 0:  # a branch on data: torch.fx cannot trace it
            h = h * 2
        return self.head(h)

def build(n_features, n_classes):
    return Branchy(n_features, n_classes)
"""


def test_untraceable_model_names_the_reason_and_the_kinds_that_work(tmp_path):
    torch.manual_seed(0)
    model = build_model(spec(write(tmp_path, UNTRACEABLE)), 30, 3).eval()
    calib = toy().calib
    for kind in ("ptq_static", "qat"):
        with pytest.raises(fx.UntraceableModel, match=rf"{kind} needs a model torch.fx can trace.*"
                           r"ptq_dynamic, rtn and gptq .* still work") as err:  # fmt: skip
            methods.get_kind(kind).quantize(model, calib, methods.make_params(kind, {}))
        assert "\n" not in str(err.value)
    for kind, params in (
        ("ptq_dynamic", {}),
        ("rtn", {"group_size": 8}),
        ("gptq", {"group_size": 8}),
    ):
        q = methods.get_kind(kind).quantize(model, calib, methods.make_params(kind, params))
        assert q.info["coverage"]["weights_quantized"] == 1.0


RECURRENT = """
import torch
from torch import nn

class GroupGRU(nn.Module):
    '''The 30 features as a sequence of 6 groups of 5, read by a GRU.'''
    def __init__(self, n_features, n_classes):
        super().__init__()
        self.gru = nn.GRU(5, 12, batch_first=True)
        self.head = nn.Linear(12, n_classes)

    def forward(self, x):
        out, _ = self.gru(x.reshape(x.shape[0], -1, 5))
        return self.head(out[:, -1])

def build(n_features, n_classes):
    return GroupGRU(n_features, n_classes)
"""


def test_gru_runs_dynamic_int8_and_weight_only_kinds_say_why_it_stays_fp32(tmp_path):
    torch.manual_seed(0)
    model = build_model(spec(write(tmp_path, RECURRENT)), 30, 3).eval()
    calib = toy().calib
    q = methods.get_kind("ptq_dynamic").quantize(
        model, calib, methods.make_params("ptq_dynamic", {})
    )
    assert "aten::quantized_gru" in operators(q.module, calib.x_val[:4])
    gru = next(e for e in q.info["coverage"]["layers"] if e["layer"] == "gru")
    assert gru["quantized"] and gru["macs"] == 6 * 3 * 12 * (5 + 12)
    assert q.info["coverage"]["weights_quantized"] == 1.0
    meta = {
        **checkpoint_meta("ptq_dynamic", {}),
        "model": resolve(spec(write(tmp_path, RECURRENT)), 30, 3).to_dict(),
    }
    save_checkpoint(tmp_path / "q.pt", meta, q.state)  # weights-only: no packed script objects
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "q.pt").module(calib.x_val), q.module(calib.x_val))
    r = methods.get_kind("rtn").quantize(
        model, calib, methods.make_params("rtn", {"group_size": 4})
    )
    gru = next(e for e in r.info["coverage"]["layers"] if e["layer"] == "gru")
    assert not gru["quantized"] and "ptq_dynamic has int8 GRU/LSTM kernels" in gru["why"]
    assert [e["layer"] for e in r.info["layer_error"]] == ["head"]
