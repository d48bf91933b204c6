"""Rule classify: one classifier on one input kind (original or segmented images)."""

from pathlib import Path

from cxlseg.classify import ClassifySettings, train_and_evaluate
from cxlseg.config import build_settings
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    section = snakemake.config["classify"]
    settings = build_settings(ClassifySettings, section, num_workers=min(section["num_workers"], snakemake.threads))
    train_and_evaluate(
        settings,
        snakemake.wildcards.model,
        snakemake.wildcards.kind,
        cxlseg_dir=Path(snakemake.input.segmented).parent,
        mimic_root=snakemake.params.mimic_root,
        run_dir=Path(snakemake.output.metrics).parent,
        seed=snakemake.config["seed"],
    )
