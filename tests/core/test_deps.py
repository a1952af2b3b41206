"""Library dependencies read from import statements, lazy imports included."""

from quantbench.core.deps import closure, direct_imports, kind_file


def test_kind_files_come_from_the_registry():
    assert kind_file("gptq") == "quant/methods/gptq.py"
    assert kind_file("ptq_static") == "quant/methods/ptq_static.py"


def test_lazy_imports_inside_functions_count():
    assert "data/presets.py" in direct_imports("data/tabular.py")  # imported inside a function


def test_closure_follows_imports_transitively_and_nothing_else():
    files = closure("quant/quantize.py", kind_file("rtn"))
    weightonly = {"quant/weightonly/packing.py", "quant/weightonly/grid.py"}
    assert weightonly | {"training/checkpoint.py"} <= set(files)
    assert not [f for f in files if f.startswith("report/")] and "data/preprocess.py" not in files
    report = closure("report/__init__.py")
    assert "core/files.py" in report and "report/stats.py" in report
    assert not {"training/train.py", "quant/loader.py", "training/checkpoint.py"} & set(report)


def test_training_does_not_depend_on_quantization_code():
    files = closure("training/train.py")
    assert not [f for f in files if f.startswith("quant/")]


def rule_lib(step: str, kind: str) -> set[str]:
    """A step's library inputs for a method of ``kind``, as workflow/rules/common.smk lists them."""
    return set(closure("core/logs.py", step, kind_file(kind)))


STEPS = ("quant/quantize.py", "measure/score.py", "measure/timing.py")


def test_the_fx_code_is_an_input_of_the_static_kinds_jobs_only():
    for step in STEPS:
        for kind in ("ptq_static", "qat"):
            assert "quant/ao/fx.py" in rule_lib(step, kind), (step, kind)
        for kind in ("ptq_dynamic", "rtn", "gptq"):
            assert "quant/ao/fx.py" not in rule_lib(step, kind), (step, kind)
    # the probe builds every engine's model with FX; recording a named engine builds none
    assert "quant/ao/fx.py" in closure("core/logs.py", "measure/probe.py")
    assert "quant/ao/fx.py" not in closure("core/logs.py", "measure/engine_record.py")


def test_an_entry_in_a_subpackage_brings_its_packages_init():
    files = closure("data/synthetic.py")
    assert {"__init__.py", "data/__init__.py", "data/synthetic.py"} <= set(files)
