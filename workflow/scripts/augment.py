"""Rule augment: balance classes of the training split and write the training store."""

from pathlib import Path

from cxlseg.io import log_to
from cxlseg.training.augment import build_training_store
from cxlseg.training.store import store_dir_of

with log_to(snakemake.log[0]):
    build_training_store(
        snakemake.input.dataset,
        snakemake.params.roots,
        # mask paths in a manifest are relative to its folder; params.roots and the manifests share one order
        {d: Path(m).parent for d, m in zip(snakemake.params.roots, snakemake.input.manifests)},
        store_dir_of(snakemake.output.store),
        snakemake.params.settings.augment,
        size=snakemake.params.settings.size,
        seed=snakemake.params.settings.seed,
        interpolation=snakemake.params.settings.interpolation,
        montage_path=snakemake.output.montage,
        counts_path=snakemake.output.counts,
    )
