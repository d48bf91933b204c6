"""Rule demo: write the synthetic archive in every native layout."""

from pathlib import Path

from cxlseg.io import log_to
from cxlseg.phantoms.generate import generate_demo

with log_to(snakemake.log[0]):
    generate_demo(Path(snakemake.output.summary).parent, snakemake.params.settings)
