"""Rules review_page and archive_review_page: a run's quality table (MIMIC's CXLSeg-qc and -split, or another
archive's own table) -> the static review page (index.html and its data, beside the run's thumbnails)."""

from cxlseg.inference.qc_model import QCModel
from cxlseg.io import log_to
from cxlseg.reporting.review_page import ReviewFiles, build_archive_review_page, build_review_page

with log_to(snakemake.log[0]):
    files = ReviewFiles(snakemake.output.page, snakemake.output.data, snakemake.params.thumbs)
    settings = {
        "min_predicted_dice": QCModel.load(snakemake.input.qc_model).min_predicted_dice,  # the bar inference used
        "demo": snakemake.params.settings.demo,
    }
    if "table" in snakemake.input.keys():
        build_archive_review_page(snakemake.input.table, files, **settings)
    else:
        build_review_page(snakemake.input.qc, snakemake.input.split, files, **settings)
