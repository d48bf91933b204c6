"""Rule qc_report: selection and status counts, flagged overlays, QC score vs truth on the demo."""

from cxlseg.io import log_to
from cxlseg.qc_report import write_qc_report

with log_to(snakemake.log[0]):
    write_qc_report(
        list(snakemake.input.manifests),
        snakemake.input.selection_summary,
        out_root=snakemake.params.out_root,
        mimic_root=snakemake.params.mimic_root,
        markdown_path=snakemake.output.markdown,
        overlays_path=snakemake.output.overlays,
        truth_dir=snakemake.params.truth,
        size=snakemake.params.size,
    )
