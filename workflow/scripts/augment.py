"""Rule augment: balance classes of the training split and write the training store."""

from pathlib import Path

from cxlseg.config import build_settings
from cxlseg.io import log_to
from cxlseg.training.augment import AugmentSettings, build_training_store

with log_to(snakemake.log[0]):
    build_training_store(
        snakemake.input.dataset,
        snakemake.params.roots,
        snakemake.params.ingest_dirs,
        Path(snakemake.output.store[0]).parent,
        build_settings(AugmentSettings, snakemake.params.augment),
        size=snakemake.params.size,
        seed=snakemake.params.seed,
        interpolation=snakemake.params.interpolation,
        montage_path=snakemake.output.montage,
        counts_path=snakemake.output.counts,
    )
