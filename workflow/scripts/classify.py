"""Rule classify: one classifier on one input kind (original or segmented images)."""
from pathlib import Path

from cxlseg.io import log_to
from cxlseg.classify import train_and_evaluate

with log_to(snakemake.log[0]):
    c = {**snakemake.config["classify"], **snakemake.params.classify}  # performance keys come from config
    train_and_evaluate(
        snakemake.wildcards.model,
        snakemake.wildcards.kind,
        cxlseg_dir=Path(snakemake.input.segmented).parent,
        cxlseg_root=Path(snakemake.input.segmented).parent,
        mimic_root=snakemake.params.mimic_root,
        out_dir=Path(snakemake.output.metrics).parent.parent,
        classes=tuple(c["classes"]),
        uncertain=c["uncertain"],
        input_size=c["input_size"],
        epochs=c["epochs"],
        batch_size=c["batch_size"],
        lr=c["lr"],
        pretrained=c["pretrained"],
        recalibrate_bn=c["recalibrate_bn"],
        image_size=snakemake.params.preprocess["size"],
        clahe_clip=snakemake.params.preprocess["clahe_clip"],
        clahe_tiles=snakemake.params.preprocess["clahe_tiles"],
        num_workers=min(c["num_workers"], snakemake.threads),
        device=c["device"],
        amp=c["amp"],
        max_train_batches=c["max_train_batches"],
        seed=snakemake.params.seed,
    )
