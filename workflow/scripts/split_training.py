"""Rule split_training: all manifests -> one table split train/validate/test by patient."""

from cxlseg.io import log_to
from cxlseg.mimic import SPLITS
from cxlseg.splits import combine_and_split

with log_to(snakemake.log[0]):
    ratios = tuple(snakemake.config["training_split"][s] for s in SPLITS)
    combine_and_split(
        list(snakemake.input.manifests), snakemake.output.dataset, ratios=ratios, seed=snakemake.config["seed"]
    )
