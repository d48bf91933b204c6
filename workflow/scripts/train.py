"""Rule train: one architecture on the training store."""

from cxlseg.io import log_to
from cxlseg.training.checkpoint import ModelFiles
from cxlseg.training.store import TrainingStore
from cxlseg.training.trainer import train_model

with log_to(snakemake.log[0]):
    out = snakemake.output
    train_model(
        TrainingStore.of(snakemake.input.store),
        ModelFiles(out.checkpoint, out.history, out.model, resume=snakemake.params.resume),
        snakemake.params.settings.with_workers(snakemake.threads),
    )
