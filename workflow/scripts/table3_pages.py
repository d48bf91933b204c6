"""Rule table3_pages: Table III (report labels, and every trained label) as pages the report shows inline."""

from cxlseg import io
from cxlseg.io import log_to
from cxlseg.reporting.pages import table3_all_labels_page, table3_page

with log_to(snakemake.log[0]):
    results, demo = snakemake.params.results, snakemake.params.settings.demo
    io.write_text(snakemake.output.table, table3_page(results, demo=demo))
    io.write_text(snakemake.output.all_labels, table3_all_labels_page(results, demo=demo))
