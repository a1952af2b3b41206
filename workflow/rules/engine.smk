# The int8 engine by measurement: every engine this torch offers, timed on the run's own
# statically quantized model (first replicate), the fastest kept; an explicit engine wins
# without a probe. All cores, like a timing job: nothing else runs beside the measurement.
rule probe_engine:
    input:
        unpack(get_probe_engine_input),
    output:
        "results/engine/{model}.json",
    log:
        "logs/probe_engine/{model}.log",
    benchmark:
        "results/benchmarks/probe_engine/{model}.tsv"
    conda:
        "../../envs/quantbench.yaml"
    threads: get_time_threads()
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
