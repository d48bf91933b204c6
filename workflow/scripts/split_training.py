"""Rule split_training: all manifests -> one table split train/validate/test by patient."""

from cxlseg.io import log_to
from cxlseg.training.splits import combine_and_split

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    combine_and_split(
        list(snakemake.input.manifests), snakemake.output.dataset, ratios=settings.ratios, seed=settings.seed
    )
