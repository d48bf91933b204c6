"""Rule review_page: CXLSeg-qc.csv.gz -> the static review page (results/review/index.html and its data)."""

from cxlseg.inference.qc_model import QCModel
from cxlseg.io import log_to
from cxlseg.reporting.review_page import ReviewFiles, build_review_page

with log_to(snakemake.log[0]):
    build_review_page(
        snakemake.input.qc,
        snakemake.input.split,
        ReviewFiles(snakemake.output.page, snakemake.output.data, snakemake.params.thumbs),
        min_predicted_dice=QCModel.load(snakemake.input.qc_model).min_predicted_dice,  # the bar inference used
        demo=snakemake.params.settings.demo,
    )
