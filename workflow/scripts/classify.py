"""Rule classify: one classifier on one input kind (original or segmented images)."""

from cxlseg.classify.run import RunFiles, train_and_evaluate
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    settings, out = snakemake.params.settings, snakemake.output
    train_and_evaluate(
        settings.classify.with_workers(snakemake.threads),
        snakemake.wildcards.model,
        snakemake.wildcards.kind,
        segmented=snakemake.input.segmented,
        split=snakemake.input.split,
        images_root=snakemake.params.images_root,
        mimic_root=snakemake.params.mimic_root,
        out=RunFiles(out.metrics, out.predictions, out.skipped),
        seed=settings.seed,
    )
