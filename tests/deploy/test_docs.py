"""docs/deploy.md stays true: its plain-onnxruntime example runs and matches quantbench predict."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from quantbench.deploy.predict import predict_csv
from tests.deploy_helpers import flows, make_artifact

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def example() -> str:
    section = DOC.read_text(encoding="utf-8").split("## Plain ONNX Runtime", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    return code


def test_the_example_is_about_ten_lines_of_onnxruntime_and_no_quantbench() -> None:
    code = example()
    lines = [x for x in code.splitlines() if x.strip()]
    assert len(lines) <= 14 and "quantbench" not in code and "import torch" not in code


def test_the_plain_onnxruntime_example_runs(tmp_path: Path) -> None:
    (tmp_path / "made").mkdir()
    made = make_artifact(tmp_path / "made")
    work = tmp_path / "work"
    shutil.copytree(made.folder, work / "results/deploy/mlp/seed42/ptq_static")
    flows(40, seed=9).to_csv(work / "new_flows.csv", index=False)
    here = Path.cwd()
    os.chdir(work)
    try:
        scope: dict = {}
        exec(compile(example(), str(DOC), "exec"), scope)
    finally:
        os.chdir(here)
    predict_csv(made.folder, work / "new_flows.csv", tmp_path / "out.csv")
    want = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(scope["probabilities"], want.filter(like="probability_"), atol=1e-6)
    names = np.array(scope["manifest"]["classes"])[scope["label"]]
    assert (names == want["predicted"].to_numpy()).all()
