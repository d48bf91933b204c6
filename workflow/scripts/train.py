"""Rule train: one architecture on the training store."""

from pathlib import Path

from cxlseg.io import log_to
from cxlseg.training.store import store_dir_of
from cxlseg.training.trainer import train_model

with log_to(snakemake.log[0]):
    cfg = snakemake.params.settings.with_workers(snakemake.threads)
    train_model(store_dir_of(snakemake.input.store), Path(snakemake.output.checkpoint).parent, cfg)
