"""The torch.ao door: engine choice, the missing-API error, and warning handling."""

from __future__ import annotations

import logging
import re
import warnings

import pytest
import torch

from quantbench.quant.ao import backend as ao
from quantbench.quant.methods import ptq_dynamic, ptq_static
from tests._toy import toy


@pytest.fixture(autouse=True)
def _restore_engine():
    engine = torch.backends.quantized.engine
    yield
    torch.backends.quantized.engine = engine


@pytest.mark.parametrize(
    ("machine", "supported", "expected"),
    [
        ("x86_64", ["qnnpack", "onednn", "x86", "fbgemm"], "x86"),
        ("AMD64", ["qnnpack", "x86", "fbgemm"], "x86"),
        ("x86_64", ["qnnpack", "fbgemm"], "fbgemm"),  # a torch without the x86 engine
        ("aarch64", ["qnnpack"], "qnnpack"),
        ("arm64", ["qnnpack", "onednn"], "qnnpack"),
    ],
)
def test_auto_engine_follows_the_machine(monkeypatch, machine, supported, expected):
    monkeypatch.setattr(ao.platform, "machine", lambda: machine)
    monkeypatch.setattr(ao, "supported_engines", lambda: supported)
    assert ao.select_engine("auto") == expected
    assert ao.select_engine() == expected


def test_auto_engine_without_any_engine_says_what_exists(monkeypatch):
    monkeypatch.setattr(ao.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(ao, "supported_engines", lambda: ["fbgemm"])
    with pytest.raises(ValueError, match="supports fbgemm"):
        ao.select_engine("auto")


def test_explicit_engine_must_be_supported(monkeypatch):
    monkeypatch.setattr(ao, "supported_engines", lambda: ["qnnpack", "x86"])
    assert ao.select_engine("qnnpack") == "qnnpack"
    with pytest.raises(ValueError, match=r"'fbgemm'.*qnnpack, x86"):
        ao.select_engine("fbgemm")


def test_use_engine_sets_the_global_engine():
    engine = ao.select_engine("auto")
    assert ao.use_engine("auto") == engine
    assert torch.backends.quantized.engine == engine
    assert ao.use_engine("qnnpack") == "qnnpack"
    assert torch.backends.quantized.engine == "qnnpack"


def test_engine_and_observer_names_are_checked():
    ao.check_engine_name("auto")
    with pytest.raises(ValueError, match=r"auto, x86, fbgemm, qnnpack, onednn.*'tpu'"):
        ao.check_engine_name("tpu")
    with pytest.raises(ValueError, match=r"minmax, moving_average, histogram.*'kl'"):
        ao.check_observer("kl")


def test_activation_range_is_7_bit_on_x86_engines():
    assert ao.activation_range("x86") == (0, 127)
    assert ao.activation_range("fbgemm") == (0, 127)
    assert ao.activation_range("qnnpack") == (0, 255)


def test_missing_torch_ao_gives_a_clear_error(monkeypatch):
    ao._tq.cache_clear()
    monkeypatch.setattr(ao, "available", lambda: False)
    try:
        with pytest.raises(
            RuntimeError, match=rf"torch {re.escape(torch.__version__)} .*<2\.16.*config"
        ):
            ao.static_qconfig("x86", "minmax", True)
    finally:
        monkeypatch.undo()
        ao._tq.cache_clear()
    assert ao.available()


KNOWN = [
    ("torch.ao.quantization is deprecated and will be removed", DeprecationWarning),
    ("TypedStorage is deprecated. It will be removed in the future", UserWarning),
    ("must run observer before calling calculate_qparams.", UserWarning),
]


def test_quiet_swallows_known_warnings_and_logs_once(monkeypatch, caplog):
    monkeypatch.setattr(ao, "_announced", False)
    with caplog.at_level(logging.WARNING, logger="quantbench"), warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            with ao.quiet():
                for text, category in KNOWN:
                    warnings.warn(text, category, stacklevel=1)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert f"deprecated upstream in torch {torch.__version__}" in lines[0]


def test_quiet_passes_unknown_warnings_through():
    with pytest.warns(RuntimeWarning, match="something else"), ao.quiet():
        warnings.warn("something else", RuntimeWarning, stacklevel=1)


def test_int8_kinds_leak_no_warnings():
    t = toy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ptq_static.quantize(t.model, t.calib, ptq_static.Params(calibration_samples=256))
        ptq_dynamic.quantize(t.model, t.calib, ptq_dynamic.Params())


def test_typed_storage_alone_is_silent_without_announcing(monkeypatch, caplog):
    """Older torch warns about TypedStorage too; that alone is no torch.ao deprecation."""
    monkeypatch.setattr(ao, "_announced", False)
    with caplog.at_level(logging.WARNING, logger="quantbench"), warnings.catch_warnings():
        warnings.simplefilter("error")
        with ao.quiet():
            warnings.warn(KNOWN[1][0], UserWarning, stacklevel=1)
    assert not caplog.records
