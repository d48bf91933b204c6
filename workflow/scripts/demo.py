"""Rule demo: write the synthetic archive in every native layout."""
from pathlib import Path

from cxlseg.io import log_to
from cxlseg.demo import DemoSpec, generate_demo

with log_to(snakemake.log[0]):
    params = dict(snakemake.params.demo)
    params.pop("enabled")
    out = params.pop("out")
    generate_demo(out, DemoSpec.from_dict(params))
