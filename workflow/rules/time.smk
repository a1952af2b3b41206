# Speed: FP32 and one method of the same model timed in one process, interleaved in rounds.
# All cores: the scheduler then runs no other job beside a timing job (honest latency).
rule time:
    input:
        unpack(get_time_input),
    output:
        "results/timing/{model}/{method}.json",
    log:
        "logs/time/{model}/{method}.log",
    benchmark:
        "results/benchmarks/time/{model}/{method}.tsv"
    wildcard_constraints:
        method=METHOD_PATTERN,
    conda:
        "../../envs/quantbench.yaml"
    threads: get_time_threads()
    resources:
        mem_mb=2000,
    params:
        timing=config["evaluate"],
        replicate=TIMED_REP,
        torch_version=torch_version(),
    script:
        "../scripts/time.py"
