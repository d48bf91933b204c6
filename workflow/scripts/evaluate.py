"""Rule evaluate: one trained model on the held-out test split, with the inference clean-up."""
from functools import partial

from pathlib import Path

from cxlseg.io import log_to
from cxlseg.evaluate import evaluate_model
from cxlseg.postprocess import clean_mask

with log_to(snakemake.log[0]):
    infer = snakemake.params.infer
    evaluate_model(
        snakemake.input.checkpoint,
        Path(snakemake.input.store[0]).parent,
        Path(snakemake.output.summary).parent,
        split="test",
        threshold=infer["threshold"],
        postprocess=partial(clean_mask, **infer["postprocess"]),
        tta_flip=infer["tta_flip"],
    )
