"""Chest X-ray archives other than MIMIC-CXR-JPG (issue #34): one adapter per archive, the pixel reader
for every format they use, and CheXmask's mask encoding.

Every adapter reads its archive's own metadata files as published and returns the same `Listing`
(:mod:`.records`): the frontal images, each with a stable id, patient, study, view, path under the archive
root and shard, plus the files it skipped and why.  :mod:`.registry` maps `archive.kind` to the adapter;
:mod:`.pixels` reads 8/16-bit PNG, JPEG and DICOM at full depth; :mod:`.rle` writes and reads each lung's
mask in CheXmask's run-length convention.  Nothing here imports the pipeline's stages.
"""
