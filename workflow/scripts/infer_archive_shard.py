"""Rule infer_archive_shard: one shard of another archive (#34) through the same shard loop, models, QC and view
check as MIMIC's shards; its list names where each image's outputs go."""

from cxlseg.inference.qc_model import QCModel
from cxlseg.inference.shard import infer_shard, inference_predictor
from cxlseg.inference.view_check import ViewChecker
from cxlseg.io import log_to, read_json
from cxlseg.tables.provenance import code_fingerprint

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings.with_workers(snakemake.threads, reserve=1)
    predictor = inference_predictor(read_json(snakemake.input.selected), settings)
    view_check = snakemake.input.view_check
    infer_shard(
        snakemake.input.images,
        snakemake.params.images_root,
        snakemake.params.out_root,
        snakemake.output.manifest,
        predictor,
        settings,
        qc_model=QCModel.load(snakemake.input.qc_model),
        view_checker=ViewChecker.from_checkpoint(view_check[0], predictor.device) if view_check else None,
        code=code_fingerprint(),
        thumbs_dir=snakemake.params.thumbs_dir,
    )
