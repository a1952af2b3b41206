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
