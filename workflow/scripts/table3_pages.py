"""Rule table3_pages: Table III (report labels, and every trained label) as pages the report shows inline."""

from cxlseg import io
from cxlseg.io import log_to
from cxlseg.reporting.inputs import ReportFiles
from cxlseg.reporting.pages import table3_all_labels_page, table3_page

with log_to(snakemake.log[0]):
    files, demo = ReportFiles.from_rule(snakemake.input), snakemake.params.settings.demo
    io.write_text(snakemake.output.table, table3_page(files, demo=demo))
    io.write_text(snakemake.output.all_labels, table3_all_labels_page(files, demo=demo))
