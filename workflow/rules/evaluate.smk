rule evaluate:
    input:
        unpack(get_evaluate_input),
    output:
        "results/metrics/{method}.json",
    log:
        "logs/evaluate/{method}.log",
    benchmark:
        "results/benchmarks/evaluate/{method}.tsv"
    wildcard_constraints:
        method=MODEL_PATTERN,
    conda:
        "../../envs/quantbench.yaml"
    # All cores: the scheduler then runs no other job beside a timing job (honest latency).
    threads: get_evaluate_threads()
    resources:
        mem_mb=2000,
    params:
        timing=config["evaluate"],
        engine=config["quantization"]["engine"],
        torch_version=torch_version(),
    script:
        "../scripts/evaluate.py"
