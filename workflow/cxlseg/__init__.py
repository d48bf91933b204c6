"""cxlseg: lung segmentation of chest X-ray archives, re-creating the CXLSeg dataset."""

__version__ = "0.1.0"
