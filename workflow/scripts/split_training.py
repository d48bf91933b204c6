"""Rule split_training: all manifests -> one table split train/val/test by patient."""
from pathlib import Path

from cxlseg.io import log_to
from cxlseg.ingest import combine_and_split

with log_to(snakemake.log[0]):
    r = snakemake.params.ratios
    combine_and_split(
        list(snakemake.input.manifests),
        snakemake.output.dataset,
        ratios=(r["train"], r["val"], r["test"]),
        seed=snakemake.params.seed,
    )
