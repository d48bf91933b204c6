"""Rule archive_table: another archive's table (CheXmask's lung RLEs, QC, view check, split by patient, the review
file applied when archive.review_file is set)."""

from cxlseg.io import log_to
from cxlseg.tables.archive import ArchiveTableFiles, archive_table

with log_to(snakemake.log[0]):
    files = ArchiveTableFiles.from_rule(snakemake.input, snakemake.output)
    archive_table(files, snakemake.params.out_root, snakemake.params.settings.kind)
