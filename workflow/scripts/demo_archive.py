"""Rule demo_archive: write the synthetic archive of `archive.kind` (not MIMIC) in that archive's own layout."""

from cxlseg.io import log_to
from cxlseg.phantoms.archives import write_demo_archive

with log_to(snakemake.log[0]):
    write_demo_archive(snakemake.params.root, snakemake.output.summary, snakemake.params.settings)
