# Deployable artifacts: every model, replicate and method (FP32 too) exported as one ONNX graph
# (preprocessing + the method's own quantization + softmax/argmax) with its manifest, then
# scored in ONNX Runtime against its torch model on the replicate's raw test rows.
rule export_model:
    input:
        unpack(get_export_model_input),
    output:
        onnx="results/deploy/{model}/{rep}/{method}/model.onnx",
        manifest="results/deploy/{model}/{rep}/{method}/manifest.json",
    log:
        "logs/export_model/{model}/{rep}/{method}.log",
    benchmark:
        "results/benchmarks/export_model/{model}/{rep}/{method}.tsv"
    wildcard_constraints:
        method=VARIANT_PATTERN,
    group:
        get_deploy_group()
    conda:
        "../../envs/quantbench.yaml"
    resources:
        mem_mb=2000,
        slurm_extra=get_slurm_extra("export_model"),
    params:
        replicate=lambda wildcards: wildcards.rep,
        versions=deploy_versions(),
    script:
        "../scripts/export_model.py"


rule check_parity:
    input:
        unpack(get_check_parity_input),
    output:
        "results/parity/{model}/{rep}/{method}.json",
    log:
        "logs/check_parity/{model}/{rep}/{method}.log",
    benchmark:
        "results/benchmarks/check_parity/{model}/{rep}/{method}.tsv"
    wildcard_constraints:
        method=VARIANT_PATTERN,
    group:
        get_deploy_group()
    conda:
        "../../envs/quantbench.yaml"
    resources:
        mem_mb=2000,
        slurm_extra=get_slurm_extra("check_parity"),
    params:
        versions=deploy_versions(),
    script:
        "../scripts/check_parity.py"


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
