"""Rule augment: balance classes of the training split and write the training store."""

from pathlib import Path

from cxlseg.io import log_to
from cxlseg.training.augment import build_training_store

with log_to(snakemake.log[0]):
    build_training_store(
        snakemake.input.dataset,
        snakemake.params.roots,
        snakemake.params.ingest_dirs,
        Path(snakemake.output.store[0]).parent,
        snakemake.params.settings.augment,
        size=snakemake.params.settings.size,
        seed=snakemake.params.settings.seed,
        montage_path=snakemake.output.montage,
        counts_path=snakemake.output.counts,
    )
