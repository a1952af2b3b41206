"""torch against ONNX Runtime on our own artifacts: every variant in one process, one thread,
interleaved rounds, paired speed-ups with intervals against torch FP32 and ONNX Runtime FP32.

Usage: python benchmarks/runtime_bench.py [RESULTS_DIR] [--model mlp] [--replicate seed42]
       [--methods ptq_static ptq_dynamic gptq_w4 rtn_w4] [--batch 512] [--rounds 50]
       [--calls 4000] [--passes 400] [--cores 4] [--configfile FILE]

Without RESULTS_DIR it first runs the workflow on a fresh copy of the repository
(``benchmarks/workflow_bench.py``'s way: ``snakemake --cores N`` in a temporary folder, the
default config or ``--configfile``) and reads that run's results. It then loads, in this one
process, torch FP32 and torch ``ptq_static`` (checkpoints of the replicate, each int8 model on
the engine its checkpoint names) and the replicate's ONNX artifacts of FP32 and of every listed
method (``results/deploy/{model}/{rep}/{method}/model.onnx``: ``ptq_static`` as QDQ with
torch's own scales, ``ptq_dynamic`` as MatMulInteger, ``gptq``/``rtn`` as MatMulNBits), and
times them all in the workflow's harness (``quantbench.measure.harness.paired_rounds``: the
same rows for every side, the order rotating from round to round, each batch size on model
copies or sessions of its own; ONNX Runtime with the workflow's session options, fed the raw
feature rows through the in-graph preprocessing). Speed-ups are the summary's own figures
(``quantbench.report.order``: per-round ratio of medians, geometric mean, bootstrap interval
over rounds). The CPU, its ISA features, torch and ONNX Runtime versions and the integer kernels
of each optimized ONNX graph are printed with them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

TORCH_METHODS = ("ptq_static",)


def run_workflow(cores: str, configfile: str | None) -> Path:
    from tests.workflow_helpers import SNAKEMAKE, copy_workflow

    workdir = Path(tempfile.mkdtemp(prefix="qb-runtime-"))
    copy_workflow(workdir)
    cmd = [*SNAKEMAKE, "--cores", cores, *(["--configfile", configfile] if configfile else [])]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed in {workdir}:\n{proc.stderr[-3000:]}")
    return workdir / "results"


def sides(results: Path, model: str, rep: str, methods: list[str]) -> tuple[dict, dict, dict]:
    """(factories, inputs, integer kernels) of every side; torch FP32 first."""
    from quantbench.data.dataset import load_dataset
    from quantbench.data.rawrows import load_raw_rows
    from quantbench.measure.harness import BLOCKS, LAYOUTS, RotatingCopies
    from quantbench.measure.ort import RotatingSessions, RowFeeds, optimized_ops, quantized_ops
    from quantbench.quant.loader import load_model

    ds = load_dataset(results / "data" / rep / "dataset.npz")
    feeds = RowFeeds(load_raw_rows(results / "data" / rep / "test_raw.npz").feeds())
    make, inputs, kernels = {}, {}, {}
    for i, method in enumerate(("fp32", *(m for m in TORCH_METHODS if m in methods))):
        loaded = load_model(results / "models" / model / rep / f"{method}.pt", expect=ds)
        make[f"torch {method}"] = RotatingCopies(loaded.module, seed=i)
    for method in ("fp32", *methods):
        onnx = results / "deploy" / model / rep / method / "model.onnx"
        if not onnx.is_file():
            sys.exit(f"{onnx}: no artifact; run the workflow with deploy.export: true")
        name = f"onnxruntime {method}"
        make[name] = RotatingSessions(onnx, LAYOUTS, BLOCKS)
        inputs[name] = feeds
        kernels[name] = quantized_ops(optimized_ops(onnx)) or {"FP32 kernels only": 0}
    return make, inputs, kernels | {"x": ds.x_test}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, nargs="?")
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--replicate", default="seed42")
    ap.add_argument(
        "--methods", nargs="*", default=["ptq_static", "ptq_dynamic", "gptq_w4", "rtn_w4"]
    )
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--calls", type=int, default=4000, help="batch-1 calls per side, in total")
    ap.add_argument("--passes", type=int, default=400, help="full batches per side, in total")
    ap.add_argument("--cores", default="4", help="for the workflow run without RESULTS_DIR")
    ap.add_argument("--configfile", default=None, help="for the workflow run without RESULTS_DIR")
    args = ap.parse_args()
    results = args.results or run_workflow(args.cores, args.configfile)

    import onnxruntime
    import torch

    from quantbench.machine.cpu import cpu_facts
    from quantbench.measure.harness import TimingConfig, paired_rounds, set_threads
    from quantbench.measure.ort import session_options
    from quantbench.report import order, stats

    set_threads(1)
    make, inputs, kernels = sides(results, args.model, args.replicate, args.methods)
    x = torch.from_numpy(kernels.pop("x"))
    cfg = TimingConfig(threads=1, batch_size=args.batch, warmup=50, rounds=args.rounds,
                       latency_samples=args.calls, throughput_repeats=args.passes)  # fmt: skip
    rounds = paired_rounds(make, x, cfg, inputs=inputs)
    facts = cpu_facts()
    print(f"CPU: {facts['model']} ({facts['architecture']}; {', '.join(facts['features'])})")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__} "
          f"{session_options()[1]}; results {results}")  # fmt: skip
    print(f"one process, 1 thread, {args.rounds} interleaved rounds; model {args.model}, "
          f"replicate {args.replicate}")  # fmt: skip
    report_cfg = stats.ReportConfig(confidence=0.95, bootstrap_resamples=9999, seed=0)
    refs = ("torch fp32", "onnxruntime fp32")
    for key, label in (("latency_ms", "batch 1"), ("pass_ms", f"batch {args.batch}")):
        print(f"\n{label}: median ms, speed-up × torch FP32 [95 % CI], × ONNX Runtime FP32")
        for side in make:
            times = [t for r in rounds for t in r[side][key]]
            cells = []
            for ref in refs:
                ratios = order.round_ratios(
                    [r[ref][key] for r in rounds], [r[side][key] for r in rounds]
                )
                iv = order.speedup_interval(ratios, report_cfg)
                cells.append(f"{iv.estimate:.2f} [{iv.lo:.2f}, {iv.hi:.2f}]")
            ops = ", ".join(f"{k} ×{v}" if v else k for k, v in kernels.get(side, {}).items())
            ms = sorted(times)[len(times) // 2]
            print(f"  {side:28s} {ms:9.4f} ms  {cells[0]:>20s}  {cells[1]:>20s}  {ops}")


if __name__ == "__main__":
    main()
