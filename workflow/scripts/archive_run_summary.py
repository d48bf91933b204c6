"""Rule archive_run_summary: another archive's listing summary and table -> its run in numbers (JSON)."""

from cxlseg.inference.qc_model import QCModel
from cxlseg.io import log_to
from cxlseg.reporting.archive_summary import write_archive_run_summary

with log_to(snakemake.log[0]):
    write_archive_run_summary(
        snakemake.input.listing,
        snakemake.input.table,
        snakemake.output.summary,
        snakemake.params.settings,
        min_predicted_dice=QCModel.load(snakemake.input.qc_model).min_predicted_dice,  # the bar inference used
    )
