"""Rule augment: balance classes of the training split and write the training store."""

from cxlseg.ingest.readers import mask_root
from cxlseg.io import log_to
from cxlseg.training.augment import build_training_store
from cxlseg.training.store import TrainingStore

with log_to(snakemake.log[0]):
    build_training_store(
        snakemake.input.dataset,
        snakemake.params.roots,
        # params.roots and the ingest manifests share one order (the enabled datasets)
        {d: mask_root(m) for d, m in zip(snakemake.params.roots, snakemake.input.manifests)},
        TrainingStore.of(snakemake.output.store),
        snakemake.params.settings.augment,
        size=snakemake.params.settings.size,
        seed=snakemake.params.settings.seed,
        interpolation=snakemake.params.settings.interpolation,
        montage_path=snakemake.output.montage,
        counts_path=snakemake.output.counts,
        skipped_path=snakemake.output.skipped,
    )
