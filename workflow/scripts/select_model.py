"""Rule select_model: Table IV, learning curves, and the model that segments the archive."""

from pathlib import Path

from cxlseg.evaluation.select_model import compare_models
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    archs = settings.architectures
    compare_models(
        dict(zip(archs, snakemake.input.summaries)),
        dict(zip(archs, snakemake.input.histories)),
        Path(snakemake.output.selected).parent,
        select_metric=settings.select_metric,
        inference_model=settings.inference_model,
    )
