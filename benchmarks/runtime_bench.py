"""torch against ONNX Runtime on our own artifacts: every variant in one process, one thread,
interleaved rounds, paired speed-ups with intervals against torch FP32 and ONNX Runtime FP32.

Usage: python benchmarks/runtime_bench.py [RESULTS_DIR] [--model mlp] [--replicate seed42]
       [--methods ptq_static ptq_dynamic gptq_w4 rtn_w4] [--batch 512] [--rounds 50]
       [--calls 4000] [--passes 400] [--cores 4] [--configfile FILE] [--resident]

Without RESULTS_DIR it first runs the workflow on a fresh copy of the repository
(``benchmarks/workflow_bench.py``'s way: ``snakemake --cores N`` in a temporary folder, the
default config or ``--configfile``) and reads that run's results. It then loads, in this one
process, torch FP32 and torch ``ptq_static`` (checkpoints of the replicate, each int8 model on
the engine its checkpoint names) and the replicate's ONNX artifacts of FP32 and of every listed
method (``results/deploy/{model}/{rep}/{method}/model.onnx``: ``ptq_static`` as QDQ with
torch's own scales, ``ptq_dynamic`` as MatMulInteger, ``gptq``/``rtn`` on their execution
path: FP32 products on weights read back from the packed codes when the session opens, or
MatMulNBits for ``execution: int4``), and
times them all in the workflow's harness (``quantbench.measure.harness.paired_rounds``: the
same rows for every side, the order rotating from round to round, each batch size on model
copies or sessions of its own; ONNX Runtime with the workflow's session options, each
artifact's model graph fed the preprocessed rows torch takes, like for like). Then each whole
artifact (raw rows through its in-graph preprocessing, every output) is timed on its own, for
absolute end-to-end figures. Speed-ups are the summary's own figures
(``quantbench.report.order``: per-round ratio of medians, geometric mean, bootstrap interval
over rounds). The CPU, its ISA features, torch and ONNX Runtime versions and the integer kernels
of each optimized ONNX graph are printed with them. For the kernels of an AVX2-only CPU on a
machine with AVX-512, run it under ``benchmarks/avx2_only.py`` (the CPU line then says
``CPUID masked to avx2``).

``--resident`` adds what each ONNX Runtime session holds: in a fresh process per artifact, a
first session is opened and run once on one row, which loads the kernels' code and their
one-time buffers (not weights); then the growth of the resident set from opening a second
session of the same artifact (the workflow's options) and running it once, with glibc's freed
heap handed back (``malloc_trim``) after the opening, so that copies made while loading do not
count, and after the run; net of the same growth for a one-node graph (ONNX Runtime's own
per-session overhead), against FP32's; with prepacking on (as the workflow times it: kernels
such as MatMulNBits keep a prepacked copy of their weights) and off; beside the initializers'
bytes in the file.
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


RESIDENT = """
import ctypes, sys
sys.path.insert(0, sys.argv[3])
import onnxruntime
from quantbench.data.rawrows import load_raw_rows
from quantbench.machine.memory import current_rss_bytes
from quantbench.measure.ort import PROVIDERS, session_options
trim = getattr(ctypes.CDLL(None), "malloc_trim", lambda pad: 0)  # glibc: freed heap back
one = {k: v[:1] for k, v in load_raw_rows(sys.argv[2]).feeds().items()}
opts, _ = session_options()
if sys.argv[4] == "off":
    opts.add_session_config_entry("session.disable_prepacking", "1")


def opened():
    session = onnxruntime.InferenceSession(sys.argv[1], opts, providers=list(PROVIDERS))
    trim(0)  # the copies made while loading are freed by now
    names = {i.name for i in session.get_inputs()}
    session.run(None, {k: v for k, v in one.items() if k in names})
    trim(0)
    return session


first = opened()  # loads the kernels' code and their one-time buffers, which are not weights
before = current_rss_bytes()
second = opened()
print(current_rss_bytes() - before)
"""


def _grown(path: Path, raw: Path, prepack: str) -> int:
    cmd = [sys.executable, "-c", RESIDENT, str(path), str(raw), str(ROOT / "src"), prepack]
    return int(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[-1])


def _one_node(raw_names: list[str], out: Path) -> Path:
    """A graph of one Identity per float raw input: a session of it holds ONNX Runtime's own
    per-session overhead and no weights."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n in raw_names]
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in raw_names]
    outs = [helper.make_tensor_value_info(f"{n}_out", TensorProto.FLOAT, None) for n in raw_names]
    model = helper.make_model(helper.make_graph(nodes, "overhead", ins, outs))
    onnx.save(model, out)
    return out


def resident(results: Path, model: str, rep: str, methods: list[str]) -> None:
    """Resident growth of a second session of each artifact (a fresh process each, the first
    session having loaded the kernels), net of ONNX Runtime's per-session overhead, against
    FP32's; beside the initializers' bytes in the file."""
    import onnx

    from quantbench.data.rawrows import load_raw_rows

    raw = results / "data" / rep / "test_raw.npz"
    names = [k for k, v in load_raw_rows(raw).feeds().items() if v.dtype.kind == "f"]
    with tempfile.TemporaryDirectory() as tmp:
        empty = _one_node(names, Path(tmp) / "overhead.onnx")
        base = {p: _grown(empty, raw, p) for p in ("on", "off")}
    overhead = base["on"] / 2**20
    print(f"\nresident: growth of the resident set from opening a second session and running it "
          f"on one row (a fresh process each, the first session having loaded the kernels, freed "
          f"heap handed back), net of ONNX Runtime's per-session overhead ({overhead:.2f} MiB "
          f"for a one-node graph), MiB")  # fmt: skip
    rows = {}
    for method in ("fp32", *methods):
        path = artifact(results, model, rep, method)
        stored = sum(
            onnx.numpy_helper.to_array(t).nbytes for t in onnx.load(str(path)).graph.initializer
        )
        net = {p: _grown(path, raw, p) - base[p] for p in ("on", "off")}
        rows[method] = (net["on"], net["off"], stored)
    ref = rows["fp32"]
    for method, (on, off, stored) in rows.items():
        print(f"  onnxruntime {method:16s} prepacked (as timed) {on / 2**20:7.2f} "
              f"({on / ref[0]:.3f}x FP32); prepacking off {off / 2**20:7.2f} "
              f"({off / ref[1]:.3f}x); initializers in the file {stored / 2**20:7.2f} "
              f"({stored / ref[2]:.3f}x)")  # fmt: skip


def sides(results: Path, model: str, rep: str, methods: list[str]) -> tuple[dict, dict, dict]:
    """(factories, inputs, integer kernels) of every side; torch FP32 first. The ONNX Runtime
    sides run each artifact's model graph on the preprocessed rows torch takes (like for like,
    as the workflow's time step does)."""
    from quantbench.data.dataset import load_dataset
    from quantbench.measure.harness import BLOCKS, LAYOUTS, RotatingCopies
    from quantbench.measure.ort import (
        MODEL_INPUT,
        RotatingSessions,
        RowFeeds,
        model_part,
        optimized_ops,
        quantized_ops,
    )
    from quantbench.quant.loader import load_model

    ds = load_dataset(results / "data" / rep / "dataset.npz")
    feeds = RowFeeds({MODEL_INPUT: ds.x_test})
    make, inputs, kernels = {}, {}, {}
    for i, method in enumerate(("fp32", *(m for m in TORCH_METHODS if m in methods))):
        loaded = load_model(results / "models" / model / rep / f"{method}.pt", expect=ds)
        make[f"torch {method}"] = RotatingCopies(loaded.module, seed=i)
    for method in ("fp32", *methods):
        onnx = artifact(results, model, rep, method)
        name = f"onnxruntime {method}"
        make[name] = RotatingSessions(model_part(onnx), LAYOUTS, BLOCKS)
        inputs[name] = feeds
        kernels[name] = quantized_ops(optimized_ops(onnx)) or {"FP32 kernels only": 0}
    return make, inputs, kernels | {"x": ds.x_test}


def artifact(results: Path, model: str, rep: str, method: str) -> Path:
    onnx = results / "deploy" / model / rep / method / "model.onnx"
    if not onnx.is_file():
        sys.exit(f"{onnx}: no artifact; run the workflow with deploy.export: true")
    return onnx


def end_to_end(results: Path, model: str, rep: str, methods: list[str], cfg) -> None:
    """Each whole artifact on its own, as the time step does it: raw rows in, every output."""
    from quantbench.measure.timing import whole_artifacts

    paths = {m: str(artifact(results, model, rep, m)) for m in ("fp32", *methods)}
    figures = whole_artifacts(paths, str(results / "data" / rep / "test_raw.npz"), cfg)
    print("\nend to end (each whole artifact on its own: raw rows in, every output out)")
    for method, fig in figures.items():
        print(f"  onnxruntime {method:16s} batch 1 {fig['latency_ms_p50']:.4f} ms, "
              f"batch {cfg.batch_size} {fig['pass_ms_p50']:.3f} ms")  # fmt: skip


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
    ap.add_argument("--resident", action="store_true", help="also each session's resident growth")
    args = ap.parse_args()
    results = args.results or run_workflow(args.cores, args.configfile)

    import onnxruntime
    import torch

    from quantbench.machine.cpu import cpu_facts, describe
    from quantbench.measure.harness import TimingConfig, paired_rounds, set_threads
    from quantbench.measure.ort import session_options
    from quantbench.report import order, stats

    set_threads(1)
    make, inputs, kernels = sides(results, args.model, args.replicate, args.methods)
    x = torch.from_numpy(kernels.pop("x"))
    cfg = TimingConfig(threads=1, batch_size=args.batch, warmup=50, rounds=args.rounds,
                       latency_samples=args.calls, throughput_repeats=args.passes)  # fmt: skip
    rounds = paired_rounds(make, x, cfg, inputs=inputs)
    print(f"CPU: {describe(cpu_facts())}")
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
    end_to_end(results, args.model, args.replicate, args.methods, cfg)
    if args.resident:
        resident(results, args.model, args.replicate, args.methods)


if __name__ == "__main__":
    main()
