"""Rule select_images: frontal images whose study has a usable report, assigned to shards."""

from pathlib import Path

from cxlseg.inference.select_images import SelectionSettings, select_images, write_selection
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    settings = SelectionSettings.from_config(snakemake.config)
    table, summary = select_images(
        snakemake.input.metadata, snakemake.params.mimic_root, snakemake.params.reports_root, settings
    )
    write_selection(
        table,
        summary,
        snakemake.output.selection,
        snakemake.output.summary,
        Path(snakemake.output.lists[0]).parent,
        settings.shard_ids,
    )
