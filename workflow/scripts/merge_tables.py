"""Rule merge_tables: shard manifests -> the four CXLSeg CSV.gz tables, the failed table and summary.json."""

from cxlseg.io import log_to
from cxlseg.tables.merge import merge_tables
from cxlseg.tables.settings import TableFiles

with log_to(snakemake.log[0]):
    merge_tables(
        list(snakemake.input.manifests),
        snakemake.input.metadata,
        snakemake.input.chexpert,
        snakemake.params.reports_root,
        TableFiles.from_rule(snakemake.output),
        snakemake.params.settings,
        official_split_csv=snakemake.input.split,
        cxlseg_split_csv=next(iter(snakemake.input.cxlseg_split), None),  # declared only for split_source cxlseg
        review_csv=next(iter(snakemake.input.review), None),  # declared only when a review changes the tables
        run=snakemake.params.run.identity(),
    )
