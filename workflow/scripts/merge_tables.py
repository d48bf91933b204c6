"""Rule merge_tables: shard manifests -> the four CXLSeg CSV.gz tables, the failed table and summary.json."""

from pathlib import Path

from cxlseg.io import log_to
from cxlseg.tables.merge import TablesSettings, merge_tables

with log_to(snakemake.log[0]):
    merge_tables(
        list(snakemake.input.manifests),
        snakemake.input.metadata,
        snakemake.input.chexpert,
        snakemake.params.reports_root,
        Path(snakemake.output.metadata).parent,
        # the params' tables section: review_file is dropped there when the review cannot change the tables
        TablesSettings.from_config({"tables": snakemake.params.tables, "seed": snakemake.params.seed}),
        official_split_csv=snakemake.input.split,
    )
