"""Rule demo: write the synthetic archive in every native layout."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the cxlseg package of this checkout

from cxlseg.io import log_to  # noqa: E402
from cxlseg.demo import DemoSpec, generate_demo  # noqa: E402

with log_to(snakemake.log[0]):
    params = dict(snakemake.params.demo)
    params.pop("enabled")
    out = params.pop("out")
    generate_demo(out, DemoSpec.from_dict(params))
