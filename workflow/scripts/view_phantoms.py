"""Rule view_phantoms: the view check's synthetic films (phantom frontal, lateral, CT, sick and lung-free films)."""

from cxlseg.io import log_to
from cxlseg.phantoms.view_films import write_view_films

with log_to(snakemake.log[0]):
    print("view phantoms:", write_view_films(snakemake.output.films, snakemake.params.settings))
