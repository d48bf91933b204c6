"""Rule train: one architecture on the training store."""

from pathlib import Path

from cxlseg.io import log_to
from cxlseg.training.trainer import train_model

with log_to(snakemake.log[0]):
    cfg = snakemake.params.settings.with_workers(snakemake.threads)
    train_model(Path(snakemake.input.store[0]).parent, Path(snakemake.output.checkpoint).parent, cfg)
