"""Rule infer_shard: segment one shard with the selected model; resumable."""

from cxlseg.infer import InferSettings, infer_shard
from cxlseg.io import log_to, read_json
from cxlseg.predictor import Predictor

with log_to(snakemake.log[0]):
    # decode workers follow the job's cpus, one core left to the forward pass, clean-up and writes
    workers = min(snakemake.config["infer"]["num_workers"], max(snakemake.threads - 1, 0))
    settings = InferSettings.from_config(snakemake.config, num_workers=workers)
    selected = read_json(snakemake.input.selected)
    predictor = Predictor.from_checkpoints(
        selected["checkpoint"],
        device=settings.device,
        tta_flip=settings.tta_flip,
        amp_dtype=settings.amp_dtype,
        compile=settings.compile,
    )
    infer_shard(
        snakemake.input.images,
        snakemake.params.mimic_root,
        snakemake.params.out_root,
        snakemake.output.manifest,
        predictor,
        settings,
    )
