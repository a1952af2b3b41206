"""Library dependencies read from import statements, lazy imports included."""

from quantbench.deps import closure, direct_imports, kind_file


def test_kind_files_come_from_the_registry():
    assert kind_file("gptq") == "methods/gptq.py"
    assert kind_file("ptq_static") == "methods/ptq_static.py"


def test_lazy_imports_inside_functions_count():
    assert "presets.py" in direct_imports("tabular.py")  # imported inside a function


def test_closure_follows_imports_transitively_and_nothing_else():
    files = closure("quantize.py", kind_file("rtn"))
    assert {"packing.py", "grid.py", "weightonly.py", "train.py", "checkpoint.py"} <= set(files)
    assert not [f for f in files if f.startswith("report/")] and "data.py" not in files
    report = closure("report/__init__.py")
    assert "files.py" in report and "report/stats.py" in report
    assert not {"train.py", "loader.py", "checkpoint.py"} & set(report)


def test_training_does_not_depend_on_quantization_code():
    files = closure("train.py")
    assert not [f for f in files if f.startswith("methods/") or f == "ao.py"]
