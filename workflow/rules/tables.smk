# The CXLSeg tables from the shard manifests, and the quality table (with the review decisions).


rule merge_tables:
    input:
        manifests=expand(rules.infer_shard.output.manifest, shard=SHARDS),
        metadata=mimic_file("metadata"),
        chexpert=mimic_file("chexpert"),
        split=mimic_file("split"),
        cxlseg_split=cxlseg_split_file(),
        review=review_file(tables_only=True),
    output:
        metadata=f"{R}/CXLSeg/CXLSeg-metadata.csv.gz",
        segmented=f"{R}/CXLSeg/CXLSeg-segmented.csv.gz",
        split=f"{R}/CXLSeg/CXLSeg-split.csv.gz",
        mask=f"{R}/CXLSeg/CXLSeg-mask.csv.gz",
        failed=f"{R}/CXLSeg/CXLSeg-failed.csv.gz",
        summary=f"{R}/tables/merge_summary.json",  # quality_table completes it as CXLSeg/summary.json
    log:
        f"{R}/logs/tables/merge.log",
    benchmark:
        f"{R}/benchmarks/merge_tables.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: resource("tables", "cpus")
    resources:
        **stage_resources("tables"),
    params:
        **settings(MergeTablesSettings),
        reports_root=lambda wc: reports_root(),
        run=RunRecord.from_config(config),  # the config hash for summary.json: no rerun trigger
    script:
        "../scripts/merge_tables.py"


rule quality_table:
    input:
        manifests=expand(rules.infer_shard.output.manifest, shard=SHARDS),
        review=review_file(),
        merged=rules.merge_tables.output.summary,
    output:
        qc=f"{R}/CXLSeg/CXLSeg-qc.csv.gz",
        summary=f"{R}/CXLSeg/summary.json",
    log:
        f"{R}/logs/tables/quality.log",
    benchmark:
        f"{R}/benchmarks/quality_table.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: resource("tables", "cpus")
    resources:
        **stage_resources("tables"),
    params:
        **settings(TablesSettings),
    script:
        "../scripts/quality_table.py"


rule archive_table:
    input:
        records=rules.list_archive.output.records,
        manifests=expand(rules.infer_archive_shard.output.manifest, ashard=ARCHIVE_SHARDS),
        review=archive_review_file(),
    output:
        table=f"{A}/{ARCHIVE.kind}-masks.csv.gz",
        summary=f"{A}/summary.json",
    log:
        f"{R}/logs/archives/{ARCHIVE.kind}/table.log",
    benchmark:
        f"{R}/benchmarks/archives/{ARCHIVE.kind}/table.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: resource("tables", "cpus")
    resources:
        **stage_resources("tables"),
    params:
        **settings(ArchiveSettings),
        out_root=lambda wc: ARCHIVE_IMAGES,
    script:
        "../scripts/archive_table.py"
