rule train_fp32:
    input:
        dataset="results/data/dataset.npz",
        lib=lib("train.py"),
    output:
        checkpoint="results/models/fp32.pt",
        history="results/models/fp32.history.json",
    log:
        "logs/train_fp32.log",
    benchmark:
        "results/benchmarks/train_fp32.tsv"
    conda:
        "../../envs/quantbench.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=2000,
    params:
        model=config["model"],
        train=config["train"],
        seed=config["seed"],
        torch_version=torch_version(),
    script:
        "../scripts/train_fp32.py"
