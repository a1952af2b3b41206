"""The torch.ao door: engine choice, the missing-API error, and warning handling."""

from __future__ import annotations

import logging
import re
import warnings

import pytest
import torch

from quantbench.quant.ao import backend, qconfigs
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
    monkeypatch.setattr(backend.platform, "machine", lambda: machine)
    monkeypatch.setattr(backend, "supported_engines", lambda: supported)
    assert backend.select_engine("auto") == expected
    assert backend.select_engine() == expected


def test_auto_engine_without_any_engine_says_what_exists(monkeypatch):
    monkeypatch.setattr(backend.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(backend, "supported_engines", lambda: ["fbgemm"])
    with pytest.raises(ValueError, match="supports fbgemm"):
        backend.select_engine("auto")


def test_explicit_engine_must_be_supported(monkeypatch):
    monkeypatch.setattr(backend, "supported_engines", lambda: ["qnnpack", "x86"])
    assert backend.select_engine("qnnpack") == "qnnpack"
    with pytest.raises(ValueError, match=r"'fbgemm'.*qnnpack, x86"):
        backend.select_engine("fbgemm")


def test_use_engine_sets_the_global_engine():
    engine = backend.select_engine("auto")
    assert backend.use_engine("auto") == engine
    assert torch.backends.quantized.engine == engine
    assert backend.use_engine("qnnpack") == "qnnpack"
    assert torch.backends.quantized.engine == "qnnpack"


def test_engine_and_observer_names_are_checked():
    backend.check_engine_name("auto")
    with pytest.raises(ValueError, match=r"auto, x86, fbgemm, qnnpack, onednn.*'tpu'"):
        backend.check_engine_name("tpu")
    with pytest.raises(ValueError, match=r"minmax, moving_average, histogram.*'kl'"):
        qconfigs.check_observer("kl")


def test_activation_range_is_7_bit_on_x86_engines():
    assert backend.activation_range("x86") == (0, 127)
    assert backend.activation_range("fbgemm") == (0, 127)
    assert backend.activation_range("qnnpack") == (0, 255)


def test_missing_torch_ao_gives_a_clear_error(monkeypatch):
    backend.torch_ao.cache_clear()
    monkeypatch.setattr(backend, "available", lambda: False)
    try:
        with pytest.raises(
            RuntimeError, match=rf"torch {re.escape(torch.__version__)} .*<2\.16.*config"
        ):
            qconfigs.static_qconfig("x86", "minmax", True)
    finally:
        monkeypatch.undo()
        backend.torch_ao.cache_clear()
    assert backend.available()


KNOWN = [
    ("torch.ao.quantization is deprecated and will be removed", DeprecationWarning),
    ("TypedStorage is deprecated. It will be removed in the future", UserWarning),
    ("must run observer before calling calculate_qparams.", UserWarning),
]


def test_quiet_swallows_known_warnings_and_logs_once(monkeypatch, caplog):
    monkeypatch.setattr(backend, "_announced", False)
    with caplog.at_level(logging.WARNING, logger="quantbench"), warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            with backend.quiet():
                for text, category in KNOWN:
                    warnings.warn(text, category, stacklevel=1)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert f"deprecated upstream in torch {torch.__version__}" in lines[0]


def test_quiet_passes_unknown_warnings_through():
    with pytest.warns(RuntimeWarning, match="something else"), backend.quiet():
        warnings.warn("something else", RuntimeWarning, stacklevel=1)


def test_int8_kinds_leak_no_warnings():
    t = toy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ptq_static.quantize(t.model, t.calib, ptq_static.Params(calibration_samples=256))
        ptq_dynamic.quantize(t.model, t.calib, ptq_dynamic.Params())


def test_typed_storage_alone_is_silent_without_announcing(monkeypatch, caplog):
    """Older torch warns about TypedStorage too; that alone is no torch.ao deprecation."""
    monkeypatch.setattr(backend, "_announced", False)
    with caplog.at_level(logging.WARNING, logger="quantbench"), warnings.catch_warnings():
        warnings.simplefilter("error")
        with backend.quiet():
            warnings.warn(KNOWN[1][0], UserWarning, stacklevel=1)
    assert not caplog.records
