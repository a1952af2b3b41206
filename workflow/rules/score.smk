# Quality needs no quiet machine: one job per model, replicate and variant, run in parallel.
rule score:
    input:
        unpack(get_score_input),
    output:
        "results/quality/{model}/{rep}/{method}.json",
    log:
        "logs/score/{model}/{rep}/{method}.log",
    benchmark:
        "results/benchmarks/score/{model}/{rep}/{method}.tsv"
    wildcard_constraints:
        method=VARIANT_PATTERN,
    group:
        get_group("score")
    conda:
        "../../envs/quantbench.yaml"
    resources:
        mem_mb=2000,
        slurm_extra=get_slurm_extra("score"),
    params:
        replicate=lambda wildcards: wildcards.rep,
        torch_version=torch_version(),
    script:
        "../scripts/score.py"
