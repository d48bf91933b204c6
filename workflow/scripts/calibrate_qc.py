"""Rule calibrate_qc: fit the predicted-Dice QC model with inference's own predictor on the validate/test store."""

from cxlseg.inference.shard import inference_predictor
from cxlseg.io import log_to, read_json
from cxlseg.qc.calibration import calibrate
from cxlseg.training.store import TrainingStore

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    calibrate(
        TrainingStore.of(snakemake.input.store),
        inference_predictor(read_json(snakemake.input.selected), settings.infer),
        settings.infer,
        snakemake.output.model,
        snakemake.output.table,
        snakemake.output.plot,
        seed=settings.seed,
    )
