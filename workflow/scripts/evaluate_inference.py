"""Rule evaluate_inference: the segmenter inference uses (selected model plus ensemble members) on the test split."""

from pathlib import Path

from cxlseg.evaluation.evaluate import evaluate_inference
from cxlseg.io import log_to, read_json
from cxlseg.training.store import store_dir_of

with log_to(snakemake.log[0]):
    evaluate_inference(
        read_json(snakemake.input.selected),
        store_dir_of(snakemake.input.store),
        Path(snakemake.output.summary).parent,
        snakemake.params.settings,
    )
