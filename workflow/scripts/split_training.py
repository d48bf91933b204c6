"""Rule split_training: all manifests -> one table split train/val/test by patient."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the cxlseg package of this checkout

from cxlseg.io import log_to  # noqa: E402
from cxlseg.ingest import combine_and_split  # noqa: E402

with log_to(snakemake.log[0]):
    r = snakemake.params.ratios
    combine_and_split(
        list(snakemake.input.manifests),
        snakemake.output.dataset,
        ratios=(r["train"], r["val"], r["test"]),
        seed=snakemake.params.seed,
    )
