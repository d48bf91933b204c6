"""Rule train_view_check: the frontal-or-not classifier behind the not_frontal QC flag."""

import torch
from cxlseg.io import log_to
from cxlseg.training.store import TrainingStore
from cxlseg.view_check.training import train_view_check

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    train_view_check(
        snakemake.output.checkpoint,
        snakemake.params.settings,
        snakemake.input.films,
        seed=snakemake.params.settings.seed,
        store_dir=TrainingStore.of(snakemake.input.store),
        view_samples=snakemake.input.samples,
        mimic_root=snakemake.params.mimic_root,
        metrics_path=snakemake.output.metrics,
    )
