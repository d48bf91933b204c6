"""Rule list_archive: the archive's frontal images (its adapter), the files skipped with the reason, and one
shard list per shard for inference."""

from cxlseg.archives.listing import ListingFiles, write_listing
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    files = ListingFiles.from_rule(snakemake.output, settings.shard_ids())
    metadata = snakemake.input.metadata
    write_listing(settings.kind, snakemake.params.root, metadata[0] if metadata else None, files)
