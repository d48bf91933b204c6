# cxlseg: chest X-ray archive -> lung-segmented dataset (CXLSeg).
# Thin on purpose: every rule lives in workflow/rules/, all logic in the cxlseg package (workflow/cxlseg/).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/phantoms.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/archives.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/view_check.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/classify.smk"
include: "workflow/rules/reporting.smk"


rule all:
    default_target: True
    input:
        get_final_output(),


onerror:
    from cxlseg.cluster import failure_advice

    for line in failure_advice(log if isinstance(log, list) else [log], config):
        print(f"cxlseg: {line}", file=sys.stderr)
