"""Rule classify_summary: Table III and ROC curves from every classifier run."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the cxlseg package of this checkout

from cxlseg.io import log_to  # noqa: E402
from cxlseg.classify import summarise  # noqa: E402

with log_to(snakemake.log[0]):
    summarise([Path(p).parent for p in snakemake.input], Path(snakemake.output.table).parent)
