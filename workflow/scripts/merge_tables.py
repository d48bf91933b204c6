"""Rule merge_tables: shard manifests -> the four CXLSeg CSV.gz tables."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the cxlseg package of this checkout

from cxlseg.io import log_to  # noqa: E402
from cxlseg.tables import merge_tables  # noqa: E402

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
