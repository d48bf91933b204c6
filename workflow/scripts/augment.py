"""Rule augment: balance classes of the training split and write the training store."""
from pathlib import Path

from cxlseg.io import log_to
from cxlseg.augment import build_training_store

with log_to(snakemake.log[0]):
    aug = dict(snakemake.params.augment)
    enabled = aug.pop("enabled")
    targets = aug.pop("targets") if enabled else None
    build_training_store(
        snakemake.input.dataset,
        snakemake.params.roots,
        snakemake.params.ingest_dirs,
        Path(snakemake.output.store[0]).parent,
        size=snakemake.params.size,
        targets=targets,
        seed=snakemake.params.seed,
        montage_path=snakemake.output.montage,
        counts_path=snakemake.output.counts,
        **aug,
    )
