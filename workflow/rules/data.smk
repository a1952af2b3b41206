rule generate_traffic:
    input:
        lib=lib("data/synthetic.py"),
    output:
        "results/data/raw.csv",
    log:
        "logs/generate_traffic.log",
    benchmark:
        "results/benchmarks/generate_traffic.tsv"
    conda:
        "../../envs/quantbench.yaml"
    params:
        synthetic=config["data"]["synthetic"],
        seed=config["seed"],
    script:
        "../scripts/generate_traffic.py"


rule preprocess:
    input:
        raw=get_preprocess_input(),
        lib=lib("data/preprocess.py"),
    output:
        dataset="results/data/{rep}/dataset.npz",
        preprocessor="results/data/{rep}/preprocessor.joblib",
        card="results/data/{rep}/data_card.json",
        raw_test="results/data/{rep}/test_raw.npz",
        encoding="results/data/{rep}/encoding.json",
    log:
        "logs/preprocess/{rep}.log",
    benchmark:
        "results/benchmarks/preprocess/{rep}.tsv"
    group:
        get_group("preprocess")
    conda:
        "../../envs/quantbench.yaml"
    resources:
        slurm_extra=get_slurm_extra("preprocess"),
    params:
        data={
            k: v for k, v in config["data"].items() if k not in ("source", "synthetic")
        },
        source=config["data"]["source"],
        seed=rep_seed,
    script:
        "../scripts/preprocess.py"
