# Statistics (means, intervals, paired differences, verdicts, the recommendation) are computed
# here from the facts the score and time jobs wrote, never inside a measuring job.
rule summarize:
    input:
        quality=quality_files(),
        timing=timing_files(),
        engine=engine_files(),
        parity=parity_files(),
        lib=lib("report/__init__.py"),
        schemas=[
            schema(f"{name}.schema.json") for name in ("quality", "timing", "metrics")
        ],
    output:
        metrics=metrics_files(),
        figures=figures_files(),
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
        recommendation=report(
            "results/recommendation.json",
            caption="../report/recommendation.rst",
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
    params:
        report=config["report"],
        recommend=config["recommend"],
    script:
        "../scripts/summarize.py"
