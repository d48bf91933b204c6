"""Rule classify_summary: Table III (report labels and all labels) and ROC curves from every classifier run."""

from cxlseg.classify.run import RunFiles
from cxlseg.classify.table3 import Table3Files, summarise
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    runs, out = snakemake.input, snakemake.output
    summarise(
        [RunFiles(*files) for files in zip(runs.metrics, runs.predictions, runs.skipped)],
        Table3Files(
            out.table, out.markdown, out.all_labels, out.all_labels_markdown, out.roc, out.skipped, out.predictions
        ),
        snakemake.params.settings.report_labels,
    )
