"""Rule evaluate: one trained model on the held-out test split, through the inference predictor and clean-up."""

from pathlib import Path

from cxlseg.evaluation.evaluate import evaluate_model
from cxlseg.io import log_to
from cxlseg.training.store import store_dir_of

with log_to(snakemake.log[0]):
    evaluate_model(
        snakemake.input.checkpoint,
        store_dir_of(snakemake.input.store),
        Path(snakemake.output.summary).parent,
        snakemake.params.settings,
    )
