"""Rule merge_tables: shard manifests -> the four CXLSeg CSV.gz tables."""
from pathlib import Path

from cxlseg.io import log_to
from cxlseg.tables import merge_tables

with log_to(snakemake.log[0]):
    t = snakemake.params.tables
    merge_tables(
        list(snakemake.input.manifests),
        snakemake.input.metadata,
        snakemake.input.chexpert,
        snakemake.params.reports_root,
        Path(snakemake.output.metadata).parent,
        split_ratios=(t["train"], t["validate"], t["test"]),
        seed=snakemake.params.seed,
        split_source=t["split_source"],
        official_split_csv=snakemake.input.split,
        include_flagged=t["include_flagged"],
    )
