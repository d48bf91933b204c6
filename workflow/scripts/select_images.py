"""Rule select_images: frontal images whose study has a usable report, assigned to shards."""

from cxlseg.inference.select_images import select_images, write_selection
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    table, summary = select_images(
        snakemake.input.metadata, snakemake.params.mimic_root, snakemake.params.reports_root, settings
    )
    write_selection(
        table,
        summary,
        snakemake.output.selection,
        snakemake.output.summary,
        dict(zip(settings.shard_ids, snakemake.output.lists)),
    )
