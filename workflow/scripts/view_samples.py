"""Rule view_samples: real archive films (side views and as many frontal films) for the view check."""

from cxlseg.inference.select_images import write_view_samples
from cxlseg.io import log_to

with log_to(snakemake.log[0]):
    write_view_samples(
        snakemake.input.metadata, snakemake.params.n_per_class, snakemake.params.seed, snakemake.output.samples
    )
