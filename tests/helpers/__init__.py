"""Helpers shared by tests: plain functions and classes (fixtures live in tests/conftest.py only)."""

from cxlseg.config import default_config

# The labels CXLSeg's Table III reports (the mean is over these four): the schema's classify.report_labels.
TABLE3_LABELS = tuple(default_config()["classify"]["report_labels"])
