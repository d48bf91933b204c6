"""Rule select_images: frontal images whose study has a report, assigned to shards."""
from pathlib import Path

from cxlseg.io import log_to
from cxlseg.infer import select_images, write_shard_lists
from cxlseg.io import write_json, write_parquet
from cxlseg.config import shard_ids

with log_to(snakemake.log[0]):
    p = snakemake.params
    selection, summary = select_images(
        snakemake.input.metadata,
        p.mimic_root,
        p.reports_root,
        views=tuple(p.views),
        shards=tuple(p.shards),
        chunks_per_shard=p.chunks,
    )
    write_parquet(selection, snakemake.output.selection)
    write_json(snakemake.output.summary, summary)
    write_shard_lists(selection, Path(snakemake.output.lists[0]).parent, shard_ids(p.shards, p.chunks))
