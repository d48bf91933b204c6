"""Rule ingest: one native dataset layout -> manifest, normalised masks, rejects."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the cxlseg package of this checkout

from cxlseg.io import log_to  # noqa: E402
from cxlseg.ingest import ingest_dataset  # noqa: E402

with log_to(snakemake.log[0]):
    ingest_dataset(
        snakemake.wildcards.dataset,
        snakemake.params.root,
        Path(snakemake.output.manifest).parent,
        mask_source=snakemake.params.mask_source,
    )
