"""The CXLSeg tables: MIMIC source files, report text, the merge of shard manifests into the dataset tables."""
