rule quantize:
    input:
        unpack(get_quantize_input),
    output:
        checkpoint="results/models/{model}/{rep}/{method}.pt",
        info="results/models/{model}/{rep}/{method}.info.json",
    log:
        "logs/quantize/{model}/{rep}/{method}.log",
    benchmark:
        "results/benchmarks/quantize/{model}/{rep}/{method}.tsv"
    wildcard_constraints:
        method=METHOD_PATTERN,
    group:
        get_group("quantize")
    conda:
        "../../envs/quantbench.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=2000,
        slurm_extra=get_slurm_extra("quantize"),
    params:
        method=lambda wildcards: method_params(
            config, wildcards.method, config["quantization"]["engine"]
        ),
        device=lambda wildcards: quantize_device(config, wildcards.method),
        seed=rep_seed,
        torch_version=torch_version(),
    script:
        "../scripts/quantize.py"
