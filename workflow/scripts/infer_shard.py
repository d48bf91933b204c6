"""Rule infer_shard: segment one shard with the selected model (or ensemble) and the calibrated QC; resumable."""

from cxlseg.infer import InferSettings, infer_shard, inference_predictor
from cxlseg.io import log_to, read_json
from cxlseg.qc_model import QCModel

with log_to(snakemake.log[0]):
    settings = InferSettings.from_config(
        snakemake.config, num_workers=min(snakemake.config["infer"]["num_workers"], snakemake.threads)
    )
    infer_shard(
        snakemake.input.images,
        snakemake.params.mimic_root,
        snakemake.params.out_root,
        snakemake.output.manifest,
        inference_predictor(read_json(snakemake.input.selected), settings),
        settings,
        qc_model=QCModel.load(snakemake.input.qc_model),
    )
