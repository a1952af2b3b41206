"""Large-input benchmark of ``quantbench predict``: wall time and peak memory against the targets.

Generates a CSV of the default layout with the project's synthetic generator (default 1 000 000
rows), makes an artifact unless one is named (``--artifact results/deploy/mlp/seed42/<method>``
from a default run; otherwise an FP32 MLP of the default shape over the default preprocessing,
exported by the workflow's own export code), then runs ``quantbench predict`` on the CSV in a
child process and reports the child's wall time and peak resident memory
(``os.wait4``'s ``ru_maxrss``) against the targets: at most 10 s and 600 MB.
Files live in a temporary folder that is deleted afterwards (``--keep`` keeps it).

    python benchmarks/predict_bench.py                  # the 1M-row target run
    python benchmarks/predict_bench.py --rows 100000
    python benchmarks/predict_bench.py --artifact results/deploy/mlp/seed42/ptq_static
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TARGET_SECONDS = 10.0
TARGET_RSS_MB = 600.0
DEFAULT_MODEL = {"arch": "mlp", "hidden": [256, 256], "dropout": 0.1}  # config.yaml's


def write_csv(path: Path, rows: int, seed: int) -> int:
    from quantbench.data.synthetic import SyntheticConfig, write_flows_csv

    write_flows_csv(SyntheticConfig(n_flows=rows, seed=seed), path)
    return path.stat().st_size


def make_artifact(work: Path, seed: int) -> Path:
    """An FP32 artifact of the default MLP shape over the default preprocessing (weights seeded,
    not trained: the time and memory of a prediction do not depend on the weights' values)."""
    import torch

    from quantbench.data.dataset import load_dataset
    from quantbench.data.preprocess import run_preprocess
    from quantbench.data.settings import DataConfig
    from quantbench.deploy.artifact import run_export
    from quantbench.models import resolve
    from quantbench.training.checkpoint import save_checkpoint

    data = work / "data"
    data.mkdir()
    write_csv(data / "raw.csv", 24_000, seed)
    outs = [data / n for n in ("dataset.npz", "preprocessor.joblib", "data_card.json")]
    run_preprocess(str(data / "raw.csv"), DataConfig(), seed, *outs, data / "test_raw.npz",
                   data / "encoding.json")  # fmt: skip
    ds = load_dataset(outs[0])
    spec = resolve(DEFAULT_MODEL, ds.n_features, ds.n_classes)
    torch.manual_seed(seed)
    meta = {
        "method": "fp32", "kind": "fp32", "params": {}, "model": spec.to_dict(),
        "feature_names": list(ds.feature_names), "class_names": list(ds.class_names),
        "seed": seed,
    }  # fmt: skip
    save_checkpoint(data / "fp32.pt", meta, spec.build().eval().state_dict())
    folder = work / "artifact"
    encoding = str(data / "encoding.json")
    run_export(str(data / "fp32.pt"), encoding, str(outs[2]), "mlp", f"seed{seed}",
               str(folder / "model.onnx"), str(folder / "manifest.json"))  # fmt: skip
    return folder


def run_predict(artifact: Path, csv: Path, out: Path) -> tuple[float, int, str]:
    """``quantbench predict`` in a child; wall seconds, that child's peak RSS in bytes, stderr.

    ``os.wait4`` gives the child's own resource usage (RUSAGE_CHILDREN would also count the
    processes the artifact's export started in this process).
    """
    code = "import sys; from quantbench.deploy.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "predict", str(artifact), str(csv), "-o", str(out)],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"predict failed:\n{stderr}")
    return wall, usage.ru_maxrss * 1024, stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--artifact", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--prepare", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--with-artifact", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare is not None:
        if args.with_artifact:
            make_artifact(args.prepare, args.seed)
        write_csv(args.prepare / "flows.csv", args.rows, args.seed + 1)
        return
    work = Path(tempfile.mkdtemp(prefix="predict_bench_"))
    try:
        # Data and artifact are made in a child: a forked child's peak RSS counts the parent's
        # pages, so this process stays small (no torch, no generated frame).
        prepare = [sys.executable, __file__, "--prepare", str(work), "--seed", str(args.seed)]
        prepare += ["--rows", str(args.rows)] + ([] if args.artifact else ["--with-artifact"])
        subprocess.run(prepare, check=True)
        artifact = args.artifact or work / "artifact"
        csv = work / "flows.csv"
        size = csv.stat().st_size
        wall, rss, _ = run_predict(artifact, csv, work / "predicted.csv")
        record = {
            "rows": args.rows,
            "csv_bytes": size,
            "artifact": str(artifact),
            "wall_seconds": round(wall, 3),
            "rows_per_second": round(args.rows / wall),
            "peak_rss_mb": round(rss / 2**20, 1),
            "target_seconds": TARGET_SECONDS,
            "target_rss_mb": TARGET_RSS_MB,
            "meets_time": wall <= TARGET_SECONDS,
            "meets_memory": rss / 2**20 <= TARGET_RSS_MB,
        }
        print(json.dumps(record, indent=2))
    finally:
        if args.keep:
            print(f"files kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
