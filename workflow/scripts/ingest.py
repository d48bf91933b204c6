"""Rule ingest: one native dataset layout -> manifest, normalised masks, rejects."""

from cxlseg.ingest.readers import IngestFiles, ingest_dataset
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    out = snakemake.output
    ingest_dataset(
        snakemake.params.settings.dataset,
        snakemake.params.root,
        IngestFiles(out.manifest, out.rejects, out.counts, out.masks),
        mask_source=snakemake.params.settings.mask_source,
    )
