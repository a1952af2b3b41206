# The int8 engine by measurement: every engine this torch offers, timed on the run's own
# statically quantized model (first replicate), the fastest kept; an explicit engine wins
# without a probe. It runs as soon as that FP32 model exists, beside other jobs: the engines
# are compared in interleaved rounds of ~10 ms blocks, so a neighbour's load hits all alike,
# and claiming every core would leave it waiting for the machine to empty (the int8 jobs wait
# for it). Priority puts it ahead of the jobs that are ready at the same time.
rule probe_engine:
    input:
        unpack(get_probe_engine_input),
    output:
        "results/engine/{model}.json",
    log:
        "logs/probe_engine/{model}.log",
    benchmark:
        "results/benchmarks/probe_engine/{model}.tsv"
    priority: 50
    conda:
        "../../envs/quantbench.yaml"
    threads: config["evaluate"]["threads"]
    resources:
        mem_mb=2000,
    params:
        engine=config["quantization"]["engine"],
        objective=config["quantization"]["probe_objective"],
        batch_size=config["evaluate"]["batch_size"],
        threads=config["evaluate"]["threads"],
        torch_version=torch_version(),
    script:
        "../scripts/probe_engine.py"
