rule summarize:
    input:
        metrics=get_summarize_input(),
        lib=lib("report.py"),
    output:
        csv="results/summary.csv",
        md="results/summary.md",
        plots=expand("results/plots/{plot}.{ext}", plot=PLOTS, ext=["png", "svg"]),
    log:
        "logs/summarize.log",
    conda:
        "../../envs/quantbench.yaml"
    script:
        "../scripts/summarize.py"
