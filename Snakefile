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
include: "workflow/rules/report.smk"


localrules:
    all,
    summarize,


rule all:
    default_target: True
    input:
        get_final_output(),
