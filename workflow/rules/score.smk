# Quality needs no quiet machine: one job per model, replicate and variant, run in parallel.
# With deploy.export the same job also writes the variant's ONNX artifact (the preprocessing,
# the method's own quantization, softmax/argmax, with its manifest) and its parity record (the
# artifact in ONNX Runtime against the torch logits just scored, on the raw test rows): one
# process, one checkpoint load; the log gives each part's seconds.
rule score:
    input:
        unpack(get_score_input),
    output:
        **score_outputs(),
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
        **score_params(),
        replicate=lambda wildcards: wildcards.rep,
        torch_version=torch_version(),
    script:
        "../scripts/score.py"
