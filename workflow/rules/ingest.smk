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
        root=lambda wc: dataset_root(wc.dataset),
        mask_source=lambda wc: config["datasets"].get(wc.dataset, {}).get("mask_source", "json"),
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
        ratios=config["training_split"],
        seed=config["seed"],
    script:
        "../scripts/split_training.py"


rule augment:
    input:
        dataset=f"{R}/training/dataset.parquet",
    output:
        store=multiext(
            f"{R}/training/store/", *[f"{s}_{k}" for s in SPLITS for k in ("images.npy", "masks.npy", "index.parquet")]
        ),
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
    resources:
        mem_mb=16000,
        runtime=120,
    params:
        roots={d: dataset_root(d) for d in enabled_datasets()},
        ingest_dirs={d: f"{R}/ingest/{d}" for d in enabled_datasets()},
        size=config["preprocess"]["size"],
        augment=config["augment"],
        seed=config["seed"],
    script:
        "../scripts/augment.py"
