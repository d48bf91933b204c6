# The patient split, the training store (class balancing by augmentation), then one training job per architecture.


rule split_training:
    input:
        manifests=expand(rules.ingest.output.manifest, dataset=enabled_datasets()),
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
        dataset=rules.split_training.output.dataset,
        manifests=expand(rules.ingest.output.manifest, dataset=enabled_datasets()),
    output:
        store=store_files(f"{R}/training/store"),
        counts=f"{R}/training/counts.csv",
        skipped=f"{R}/training/skipped.csv",
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
        **stage_resources("augment"),
    params:
        **settings(AugmentRunSettings),
        roots={d: dataset_root(d) for d in enabled_datasets()},
    script:
        "../scripts/augment.py"


rule train:
    input:
        store=rules.augment.output.store,
    output:
        checkpoint=f"{R}/models/{{arch}}/checkpoint_best.pt",
        history=f"{R}/models/{{arch}}/history.csv",
        model=f"{R}/models/{{arch}}/model.json",
    log:
        f"{R}/logs/models/{{arch}}/train.log",
    benchmark:
        f"{R}/benchmarks/train/{{arch}}.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("train", "cpus")
    resources:
        **stage_resources("train"),
    params:
        **settings(TrainConfig, "arch"),
        # the resume state: not an output, which Snakemake would delete before a retried job runs
        resume=f"{R}/models/{{arch}}/checkpoint_last.pt",
    script:
        "../scripts/train.py"
