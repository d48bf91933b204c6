"""Rule ingest: one native dataset layout -> manifest, normalised masks, rejects."""

from pathlib import Path

from cxlseg.ingest.readers import ingest_dataset
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    ingest_dataset(
        snakemake.params.settings.dataset,
        snakemake.params.root,
        Path(snakemake.output.manifest).parent,
        mask_source=snakemake.params.settings.mask_source,
    )
