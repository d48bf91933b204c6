# Training data: one ingest job per native layout, the patient split, then class balancing.


rule ingest:
    input:
        demo_marker(),
    output:
        manifest=f"{R}/ingest/{{dataset}}/manifest.parquet",
        rejects=f"{R}/ingest/{{dataset}}/rejects.csv",
        counts=f"{R}/ingest/{{dataset}}/counts.json",
    log:
        f"{R}/logs/ingest/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/ingest/{{dataset}}.tsv"
    conda:
        "../../envs/segmentation.yaml"
    params:
        **settings(IngestSettings, "dataset"),
        root=lambda wc: dataset_root(wc.dataset),
    script:
        "../scripts/ingest.py"


rule split_training:
    input:
        manifests=expand(f"{R}/ingest/{{dataset}}/manifest.parquet", dataset=enabled_datasets()),
    output:
        dataset=f"{R}/training/dataset.parquet",
    log:
        f"{R}/logs/training/split.log",
    benchmark:
        f"{R}/benchmarks/split_training.tsv"
    conda:
        "../../envs/segmentation.yaml"
    params:
        **settings(TrainingSplitSettings),
    script:
        "../scripts/split_training.py"


rule augment:
    input:
        dataset=f"{R}/training/dataset.parquet",
        manifests=expand(f"{R}/ingest/{{dataset}}/manifest.parquet", dataset=enabled_datasets()),
    output:
        store=store_files(f"{R}/training/store"),
        counts=f"{R}/training/counts.csv",
        montage=report(
            f"{R}/training/augment_montage.jpg",
            caption="../report/montage.rst",
            category="1. Training data",
            labels={"page": "2. Augmented samples with mask outlines"},
        ),
    log:
        f"{R}/logs/training/augment.log",
    benchmark:
        f"{R}/benchmarks/augment.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("augment", "cpus")
    resources:
        mem_mb=resource("augment", "mem_mb"),
        runtime=resource("augment", "runtime"),
        gpu=resource("augment", "gpu"),
        cpus_per_task=resource("augment", "cpus"),
    params:
        **settings(AugmentRunSettings),
        roots={d: dataset_root(d) for d in enabled_datasets()},
    script:
        "../scripts/augment.py"
