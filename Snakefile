from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/engine.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/time.smk"
include: "workflow/rules/deploy.smk"
include: "workflow/rules/report.smk"


# On a cluster these run where Snakemake runs instead of as jobs: `all` and `summarize` gather
# files; `generate_traffic` writes the default synthetic data in about a second, and as a job it
# would cost a queue wait, two Snakemake starts and a status poll before anything else can start.
localrules:
    all,
    summarize,
    generate_traffic,


rule all:
    default_target: True
    input:
        get_final_output(),
