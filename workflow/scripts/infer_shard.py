"""Rules infer_shard (MIMIC) and infer_archive_shard (another archive, #34): segment one shard with the selected
model (or ensemble), the calibrated QC and the view check; resumable. The shard list says where each image is read
(under params.images_root) and written."""

from cxlseg.fingerprint import code_fingerprint
from cxlseg.inference.outputs import thumbnail_dir
from cxlseg.inference.qc_model import QCModel
from cxlseg.inference.shard import infer_shard, inference_predictor
from cxlseg.inference.view_check import ViewChecker
from cxlseg.io import log_to, read_json

with log_to(snakemake.log[0]):
    # decode workers follow the job's cpus, one core left to the forward pass, clean-up and writes
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
        code=code_fingerprint(),  # a partial manifest of another version of the code is not resumed
        thumbs_dir=thumbnail_dir(snakemake.params.thumbs, snakemake.params.shard),
    )
