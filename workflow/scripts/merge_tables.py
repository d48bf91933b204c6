"""Rule merge_tables: shard manifests -> the four CXLSeg CSV.gz tables."""

from pathlib import Path

from cxlseg.io import log_to
from cxlseg.tables.merge import TablesSettings, merge_tables
from cxlseg.tables.provenance import run_identity

with log_to(snakemake.log[0]):
    merge_tables(
        list(snakemake.input.manifests),
        snakemake.input.metadata,
        snakemake.input.chexpert,
        snakemake.params.reports_root,
        Path(snakemake.output.metadata).parent,
        TablesSettings.from_config(snakemake.config),
        official_split_csv=snakemake.input.split,
        run=run_identity(snakemake.config),  # a record only: the config hash is no rerun trigger
    )
