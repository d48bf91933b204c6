"""Rule classify_summary: Table III and ROC curves from every classifier run."""
from pathlib import Path

from cxlseg.io import log_to
from cxlseg.classify import summarise

with log_to(snakemake.log[0]):
    summarise([Path(p).parent for p in snakemake.input], Path(snakemake.output.table).parent)
