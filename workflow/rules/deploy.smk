# The deployable artifacts and their parity records are written by the score jobs (score.smk).
# With deploy.predict: the configured CSV classified by each model's recommended artifact.
rule predict_rows:
    input:
        unpack(get_predict_rows_input),
    output:
        "results/predictions/{model}.csv",
    log:
        "logs/predict_rows/{model}.log",
    benchmark:
        "results/benchmarks/predict_rows/{model}.tsv"
    conda:
        "../../envs/quantbench.yaml"
    resources:
        mem_mb=2000,
    script:
        "../scripts/predict_rows.py"
