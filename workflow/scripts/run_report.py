"""Rule run_report: the landing summary, inline tables, dataset previews and a sample grid of the run."""

from cxlseg.io import log_to
from cxlseg.reporting.inputs import ReportFiles
from cxlseg.reporting.run_report import write_pages

with log_to(snakemake.log[0]):
    paths = write_pages(
        ReportFiles.from_rule(snakemake.input, images_root=snakemake.params.images_root),
        dict(snakemake.output.items()),
        mimic_root=snakemake.params.mimic_root,
        demo=snakemake.params.settings.demo,
        seed=snakemake.params.settings.seed,
    )
    print("wrote", *paths.values())
