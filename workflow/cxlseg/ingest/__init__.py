"""Ingest: read the public lung-mask sets in their native layouts, validate, label the class, split by patient."""
