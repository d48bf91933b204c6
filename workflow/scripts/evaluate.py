"""Rule evaluate: one trained model on the held-out test split, through the inference predictor and clean-up."""

from cxlseg.evaluation.evaluate import EvaluationFiles, evaluate_model
from cxlseg.io import log_to
from cxlseg.training.store import TrainingStore

with log_to(snakemake.log[0]):
    evaluate_model(
        snakemake.input.checkpoint,
        TrainingStore.of(snakemake.input.store),
        EvaluationFiles(snakemake.output.per_image, snakemake.output.summary),
        snakemake.params.settings,
    )
