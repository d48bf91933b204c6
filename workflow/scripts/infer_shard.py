"""Rule infer_shard: segment one shard with the selected model; resumable."""
from pathlib import Path

from cxlseg.io import log_to
from cxlseg.infer import infer_shard
from cxlseg.io import read_json

with log_to(snakemake.log[0]):
    cfg = {**snakemake.config["infer"], **snakemake.params.infer}  # performance keys come from config
    selected = read_json(snakemake.input.selected)
    infer_shard(
        snakemake.input.images,
        snakemake.params.mimic_root,
        snakemake.params.out_root,
        snakemake.output.manifest,
        checkpoint=selected["checkpoint"],
        output_size=snakemake.params.output_size,
        batch_size=cfg["batch_size"],
        num_workers=min(cfg["num_workers"], snakemake.threads),
        device=cfg["device"],
        threshold=cfg["threshold"],
        postprocess=cfg["postprocess"],
        qc_thresholds=cfg["qc"],
        mask_format=cfg["mask_format"],
        jpeg_quality=cfg["jpeg_quality"],
        save_full_res_rle=cfg["save_full_res_rle"],
        separate_lungs=cfg["separate_lungs"],
        tta_flip=cfg["tta_flip"],
        flush_every=cfg["flush_every"],
        reduce_min_ratio=cfg["reduce_min_ratio"],
        write_threads=cfg["write_threads"],
    )
