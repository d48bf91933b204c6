"""Rule demo: write the synthetic archive in every native layout."""

from cxlseg.io import log_to
from cxlseg.phantoms import DemoSpec, generate_demo

with log_to(snakemake.log[0]):
    section = snakemake.config["demo"]
    generate_demo(section["out"], DemoSpec.from_config(section))
