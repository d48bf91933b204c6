"""Rule classify: one classifier on one input kind (original or segmented images)."""

from pathlib import Path

from cxlseg.classify import train_and_evaluate
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    train_and_evaluate(
        settings.classify.with_workers(snakemake.threads),
        snakemake.wildcards.model,
        snakemake.wildcards.kind,
        cxlseg_dir=Path(snakemake.input.segmented).parent,
        mimic_root=snakemake.params.mimic_root,
        run_dir=Path(snakemake.output.metrics).parent,
        seed=settings.seed,
    )
