rule quantize:
    input:
        unpack(get_quantize_input),
    output:
        checkpoint="results/models/{method}.pt",
        info="results/models/{method}.info.json",
    log:
        "logs/quantize/{method}.log",
    benchmark:
        "results/benchmarks/quantize/{method}.tsv"
    wildcard_constraints:
        method=METHOD_PATTERN,
    conda:
        "../../envs/quantbench.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=2000,
    params:
        method=lambda wildcards: method_params(
            config, wildcards.method, config["quantization"]["engine"]
        ),
        device=config["train"]["device"],
        seed=config["seed"],
        torch_version=torch_version(),
    script:
        "../scripts/quantize.py"
