rule summarize:
    input:
        metrics=get_summarize_input(),
        lib=lib("report.py"),
        schema=os.path.relpath(METRICS_SCHEMA),
    output:
        csv=report(
            "results/summary.csv",
            caption="../report/summary_table.rst",
            category="Summary",
        ),
        md=report(
            "results/summary.md",
            caption="../report/summary_md.rst",
            category="Summary",
        ),
        plots=[
            report(
                f"results/plots/{plot}.{ext}",
                caption=f"../report/{plot}.rst",
                category="Plots",
                subcategory=ext.upper(),
            )
            for plot in PLOTS
            for ext in ("png", "svg")
        ],
    log:
        "logs/summarize.log",
    conda:
        "../../envs/quantbench.yaml"
    script:
        "../scripts/summarize.py"
