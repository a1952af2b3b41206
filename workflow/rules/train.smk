rule train_fp32:
    input:
        unpack(get_train_input),
    output:
        checkpoint="results/models/{model}/{rep}/fp32.pt",
        history="results/models/{model}/{rep}/fp32.history.json",
    log:
        "logs/train_fp32/{model}/{rep}.log",
    benchmark:
        "results/benchmarks/train_fp32/{model}/{rep}.tsv"
    group:
        get_group("train_fp32")
    conda:
        "../../envs/quantbench.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=2000,
        slurm_extra=get_slurm_extra("train_fp32"),
    params:
        model=lambda wildcards: model_params(wildcards.model),
        train=config["train"],
        seed=rep_seed,
        torch_version=torch_version(),
    script:
        "../scripts/train_fp32.py"
