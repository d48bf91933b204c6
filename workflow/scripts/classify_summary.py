"""Rule classify_summary: Table III (report labels and all labels) and ROC curves from every classifier run."""

from pathlib import Path

from cxlseg.classify import summarise
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    summarise(
        [Path(p).parent for p in snakemake.input],
        Path(snakemake.output.table).parent,
        snakemake.params.settings.report_labels,
    )
