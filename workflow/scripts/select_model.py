"""Rule select_model: comparison table, learning curves, and the model used for inference."""
from pathlib import Path

from cxlseg.io import log_to
from cxlseg.evaluate import compare_models

with log_to(snakemake.log[0]):
    archs = snakemake.params.archs
    compare_models(
        dict(zip(archs, snakemake.input.summaries)),
        dict(zip(archs, snakemake.input.histories)),
        Path(snakemake.output.selected).parent,
        select_metric=snakemake.params.metric,
        select_split="val",
    )
