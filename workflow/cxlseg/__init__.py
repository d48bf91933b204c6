"""cxlseg: lung segmentation of chest X-ray archives, re-creating the CXLSeg dataset."""

import os

# albumentations asks PyPI for a newer version on every import (2 s timeout, then a warning):
# cluster compute nodes have no internet, so every job would pay that and log noise.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
