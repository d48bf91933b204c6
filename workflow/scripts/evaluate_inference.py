"""Rule evaluate_inference: the segmenter inference uses (selected model plus ensemble members) on the test split."""

from pathlib import Path

from cxlseg.evaluation.evaluate import evaluate_inference
from cxlseg.inference.shard import InferSettings
from cxlseg.io import log_to, read_json

with log_to(snakemake.log[0]):
    evaluate_inference(
        read_json(snakemake.input.selected),
        Path(snakemake.input.store[0]).parent,
        Path(snakemake.output.summary).parent,
        InferSettings.from_config(snakemake.config),
    )
