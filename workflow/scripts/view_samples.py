"""Rule view_samples: real archive films (side views and as many frontal films) for the view check."""

from cxlseg.io import log_to
from cxlseg.view_check.samples import write_view_samples

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    write_view_samples(snakemake.input.metadata, settings.n_per_class, settings.seed, snakemake.output.samples)
