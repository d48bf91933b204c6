# Another archive than MIMIC-CXR-JPG (archive.kind, #34): its adapter lists the frontal images into shards.


rule list_archive:
    input:
        demo_archive_marker(),
        metadata=archive_metadata(),
    output:
        records=f"{A}/listing/records.parquet",
        skipped=f"{A}/listing/skipped.csv",
        summary=f"{A}/listing/summary.json",
        lists=expand(ARCHIVE_LIST, ashard=ARCHIVE_SHARDS),
    log:
        f"{R}/logs/archives/{ARCHIVE.kind}/list.log",
    benchmark:
        f"{R}/benchmarks/archives/{ARCHIVE.kind}/list.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("select_images", "cpus")
    resources:
        **stage_resources("select_images"),
    params:
        **settings(ArchiveSettings),
        root=lambda wc: archive_root(),
    script:
        "../scripts/list_archive.py"
