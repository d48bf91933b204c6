"""Rule select_model: Table IV, learning curves, and the model that segments the archive."""

from cxlseg.evaluation.select_model import ComparisonFiles, compare_models
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    settings, out = snakemake.params.settings, snakemake.output
    archs = settings.architectures
    compare_models(
        dict(zip(archs, snakemake.input.summaries)),
        dict(zip(archs, snakemake.input.histories)),
        ComparisonFiles(out.table, out.markdown, out.curves, out.selected),
        select_metric=settings.select_metric,
        inference_model=settings.inference_model,
    )
