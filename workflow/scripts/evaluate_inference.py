"""Rule evaluate_inference: the segmenter inference uses (selected model plus ensemble members) on the test split."""

from cxlseg.evaluation.evaluate import EvaluationFiles, evaluate_inference
from cxlseg.io import log_to, read_json
from cxlseg.training.store import TrainingStore

with log_to(snakemake.log[0]):
    evaluate_inference(
        read_json(snakemake.input.selected),
        TrainingStore.of(snakemake.input.store),
        EvaluationFiles(snakemake.output.per_image, snakemake.output.summary),
        snakemake.params.settings,
    )
