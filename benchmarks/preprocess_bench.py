"""Large-input benchmark of the preprocess step: wall time and peak memory against the targets.

Writes a deterministic CICFlowMeter-like CSV (default 1 000 000 rows x 80 columns: a flow id,
78 numeric features with ``Infinity``/``NaN`` sprinkled in, a label) into a temporary folder,
runs ``run_preprocess`` on it in a child process, and reports the child's wall time and peak
resident memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) against the targets: under 60 s, and
under twice the file size. The file is deleted afterwards (``--keep`` keeps it).

    python benchmarks/preprocess_bench.py            # the 1M x 80 target run (~0.8 GB file)
    python benchmarks/preprocess_bench.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from quantbench.data.settings import DataConfig

TARGET_SECONDS = 60.0
TARGET_MEMORY_RATIO = 2.0
CLASSES = ("browsing", "chat", "file-transfer", "streaming", "voip")
POOL_ROWS = 20_000  # distinct rows; the file repeats them in a seeded random order

CHILD = """
import sys, json
from quantbench.data.preprocess import run_preprocess
from quantbench.data.settings import DataConfig
raw, out, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
run_preprocess(raw, DataConfig(label_column="Label", chunk_rows=chunk), 0,
               f"{out}/dataset.npz", f"{out}/preprocessor.joblib", f"{out}/data_card.json")
"""


def _pool(n_features: int, seed: int) -> list[str]:
    """Distinct row texts (without the flow id): integers and long decimals like CICFlowMeter."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), POOL_ROWS)
    values = rng.gamma(0.8, 1.0, (POOL_ROWS, n_features)) * 10.0 ** (labels[:, None] % 4 + 1)
    rows = []
    for r in range(POOL_ROWS):
        cells = [f"{v:.0f}" if j % 3 == 0 else repr(float(v)) for j, v in enumerate(values[r])]
        if r % 997 == 0:
            cells[14] = "Infinity"
        if r % 1499 == 0:
            cells[15] = "NaN"
        rows.append(",".join([*cells, CLASSES[labels[r]]]))
    return rows


def write_csv(path: Path, n_rows: int, n_columns: int, seed: int = 0) -> int:
    """Write the benchmark CSV; return its size in bytes."""
    n_features = n_columns - 2
    pool = _pool(n_features, seed)
    order = np.random.default_rng(seed + 1).integers(0, POOL_ROWS, n_rows)
    header = ["Flow ID", *(f" Feature {j:02d}" for j in range(n_features)), " Label"]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(",".join(header) + "\n")
        for start in range(0, n_rows, 100_000):
            block = order[start : start + 100_000]
            lines = (f"10.0.{i % 250}.{i % 199}-{i}," + pool[k] for i, k in enumerate(block, start))
            fh.write("\n".join(lines) + "\n")
    return path.stat().st_size


def run_child(raw: Path, out: Path, chunk_rows: int) -> tuple[float, int, str]:
    """Run preprocess in a child; return wall seconds, the child's peak RSS in bytes, stderr."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(raw), str(out), str(chunk_rows)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"preprocess failed:\n{proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    return wall, peak, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=80)
    parser.add_argument("--chunk-rows", type=int, default=DataConfig().chunk_rows)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="preprocess_bench_"))
    try:
        t0 = time.perf_counter()
        size = write_csv(tmp / "flows.csv", args.rows, args.columns)
        print(f"wrote {args.rows} x {args.columns} CSV, {size / 2**20:.0f} MiB, "
              f"in {time.perf_counter() - t0:.1f} s ({tmp / 'flows.csv'})")  # fmt: skip
        wall, peak, _ = run_child(tmp / "flows.csv", tmp / "out", args.chunk_rows)
        card = json.loads((tmp / "out" / "data_card.json").read_text())
        ratio = peak / size
        print(f"rows kept {card['rows']['kept']} of {card['rows']['read']}, "
              f"{len(card['feature_names'])} features, dropped {card['rows_dropped']}")  # fmt: skip
        print(f"wall time  {wall:6.1f} s      target < {TARGET_SECONDS:.0f} s      "
              f"{'OK' if wall < TARGET_SECONDS else 'MISSED'}")  # fmt: skip
        print(f"peak RSS   {peak / 2**20:6.0f} MiB    target < {TARGET_MEMORY_RATIO:.0f} x file "
              f"= {TARGET_MEMORY_RATIO * size / 2**20:.0f} MiB  ({ratio:.2f} x)  "
              f"{'OK' if ratio < TARGET_MEMORY_RATIO else 'MISSED'}")  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
