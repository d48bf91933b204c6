"""Rule select_model: comparison table, learning curves, and the model used for inference."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the cxlseg package of this checkout

from cxlseg.io import log_to  # noqa: E402
from cxlseg.evaluate import compare_models  # noqa: E402

with log_to(snakemake.log[0]):
    archs = snakemake.params.archs
    compare_models(
        dict(zip(archs, snakemake.input.summaries)),
        dict(zip(archs, snakemake.input.histories)),
        Path(snakemake.output.selected).parent,
        select_metric=snakemake.params.metric,
        select_split="val",
    )
