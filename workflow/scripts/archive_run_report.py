"""Rule archive_run_report: another archive's run summary, segmenter, QC model and benchmarks -> its run report page."""

from cxlseg.io import log_to, write_text
from cxlseg.reporting.archive_pages import run_page
from cxlseg.reporting.inputs import ReportFiles

with log_to(snakemake.log[0]):
    files = ReportFiles(
        selected=snakemake.input.selected,
        qc_model=snakemake.input.qc_model,
        manifests=list(snakemake.input.manifests),
        benchmarks=list(snakemake.input.benchmarks),
    )
    write_text(snakemake.output.page, run_page(snakemake.input.summary, files, demo=snakemake.params.settings.demo))
