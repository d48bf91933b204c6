# MIMIC-CXR-JPG inference: select frontal images with reports, list each shard, segment shards in parallel.


rule select_images:
    input:
        demo_marker(),
        metadata=mimic_file("metadata"),
    output:
        selection=f"{R}/infer/selection.parquet",
        summary=f"{R}/infer/selection_summary.json",
        lists=expand(f"{R}/infer/lists/{{shard}}.parquet", shard=SHARDS),
    log:
        f"{R}/logs/infer/select_images.log",
    benchmark:
        f"{R}/benchmarks/select_images.tsv"
    conda:
        "../../envs/segmentation.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        mimic_root=lambda wc: mimic_root(),
        reports_root=lambda wc: reports_root(),
        views=config["mimic"]["views"],
        shards=config["mimic"]["shards"],
        chunks=config["mimic"]["chunks_per_shard"],
    script:
        "../scripts/select_images.py"


rule infer_shard:
    input:
        images=f"{R}/infer/lists/{{shard}}.parquet",
        selected=f"{R}/models/selected.json",
        qc_model=f"{R}/models/qc_calibration.json",
        view_check=[f"{R}/models/view_check.pt"] if config["view_check"]["enabled"] else [],
    output:
        manifest=f"{R}/infer/manifests/{{shard}}.parquet",
    log:
        f"{R}/logs/infer/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/infer/{{shard}}.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: res("infer", "cpus", 8)  # CPU decode is the bound of a GPU job (docs/throughput.md)
    resources:
        mem_mb=res("infer", "mem_mb", 16000),
        runtime=res("infer", "runtime", 720),
        gpu=res("infer", "gpu", 1),
        cpus_per_task=res("infer", "cpus", 8),
    params:
        mimic_root=lambda wc: mimic_root(),
        out_root=lambda wc: f"{R}/CXLSeg",
        thumbs_dir=lambda wc: f"{R}/review/thumbs/{wc.shard}",
        infer=outcome_settings("infer"),
        output_size=config["preprocess"]["size"],
    script:
        "../scripts/infer_shard.py"
