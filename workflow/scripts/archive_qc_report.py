"""Rule archive_qc_report: another archive's table and review thumbnails -> its QC report (page, flagged
overlays, predicted-Dice histogram, counts)."""

from cxlseg.io import log_to
from cxlseg.reporting.archive_pages import write_archive_qc_report

with log_to(snakemake.log[0]):
    write_archive_qc_report(
        snakemake.input.table,
        snakemake.params.thumbs,
        snakemake.input.qc_model,
        html_path=snakemake.output.html,
        overlays_path=snakemake.output.overlays,
        histogram_path=snakemake.output.histogram,
        summary_path=snakemake.output.summary,
        demo=snakemake.params.settings.demo,
    )
