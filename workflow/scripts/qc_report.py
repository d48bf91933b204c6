"""Rule qc_report: selection and status counts, flagged overlays, the predicted-Dice model, and its check on the demo."""

from cxlseg.io import log_to
from cxlseg.reporting.qc_report import write_qc_report

with log_to(snakemake.log[0]):
    write_qc_report(
        list(snakemake.input.manifests),
        snakemake.input.selection_summary,
        out_root=snakemake.params.out_root,
        mimic_root=snakemake.params.mimic_root,
        markdown_path=snakemake.output.markdown,
        overlays_path=snakemake.output.overlays,
        qc_model_path=snakemake.input.qc_model,
        calibration_table=snakemake.input.calibration,
        dice_plot_path=snakemake.output.dice_plot,
        truth_dir=snakemake.params.truth,
        size=snakemake.params.settings.size,
        interpolation=snakemake.params.settings.interpolation,
        html_path=snakemake.output.html,
        summary_path=snakemake.output.summary,
        demo=snakemake.params.settings.demo,
    )
