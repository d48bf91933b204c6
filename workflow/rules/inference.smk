# MIMIC-CXR-JPG inference: select frontal images with reports, list each shard, segment shards in parallel.


rule select_images:
    input:
        demo_marker(),
        metadata=mimic_file("metadata"),
    output:
        selection=f"{R}/infer/selection.parquet",
        summary=f"{R}/infer/selection_summary.json",
        lists=expand(SHARD_LIST, shard=SHARDS),
    log:
        f"{R}/logs/infer/select_images.log",
    benchmark:
        f"{R}/benchmarks/select_images.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("select_images", "cpus")
    resources:
        **stage_resources("select_images"),
    params:
        **settings(SelectionSettings),
        mimic_root=lambda wc: mimic_root(),
        reports_root=lambda wc: reports_root(),
    script:
        "../scripts/select_images.py"


rule infer_shard:
    input:
        images=SHARD_LIST,
        selected=rules.select_model.output.selected,
        qc_model=rules.calibrate_qc.output.model,
        view_check=[rules.train_view_check.output.checkpoint] if config["view_check"]["enabled"] else [],
    output:
        manifest=f"{R}/infer/manifests/{{shard}}.parquet",
    log:
        f"{R}/logs/infer/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/infer/{{shard}}.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("infer", "cpus")
    resources:
        **stage_resources("infer"),
    params:
        **settings(InferSettings),
        images_root=lambda wc: mimic_root(),
        out_root=lambda wc: CXLSEG,
        thumbs=lambda wc: THUMBS,
        shard=lambda wc: wc.shard,
    script:
        "../scripts/infer_shard.py"


rule infer_archive_shard:
    input:
        images=ARCHIVE_LIST,
        selected=rules.select_model.output.selected,
        qc_model=rules.calibrate_qc.output.model,
        view_check=[rules.train_view_check.output.checkpoint] if config["view_check"]["enabled"] else [],
    output:
        manifest=f"{A}/manifests/{{ashard}}.parquet",
    log:
        f"{R}/logs/archives/{ARCHIVE.kind}/{{ashard}}.log",
    benchmark:
        f"{R}/benchmarks/archives/{ARCHIVE.kind}/{{ashard}}.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("infer", "cpus")
    resources:
        **stage_resources("infer"),
    params:
        **settings(InferSettings),
        images_root=lambda wc: archive_root(),
        out_root=lambda wc: ARCHIVE_IMAGES,
        thumbs=lambda wc: ARCHIVE_THUMBS,
        shard=lambda wc: wc.ashard,
    script:
        "../scripts/infer_shard.py"
