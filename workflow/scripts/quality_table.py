"""Rule quality_table: shard manifests (+ the review file, the merge's summary) -> CXLSeg-qc.csv.gz, summary.json."""

from cxlseg.io import log_to
from cxlseg.tables.quality import write_qc_table

with log_to(snakemake.log[0]):
    write_qc_table(
        list(snakemake.input.manifests),
        snakemake.output.qc,
        snakemake.params.settings,
        review_csv=next(iter(snakemake.input.review), None),  # declared only when tables.review_file is set
        merged=snakemake.input.merged,
        summary=snakemake.output.summary,
    )
