# Training data: one ingest job per native layout.


rule ingest:
    input:
        demo_marker(),
    output:
        manifest=f"{R}/ingest/{{dataset}}/manifest.parquet",
        rejects=f"{R}/ingest/{{dataset}}/rejects.csv",
        counts=f"{R}/ingest/{{dataset}}/counts.json",
        # one normalised mask per accepted image; the manifest's mask paths are relative to its folder
        masks=directory(f"{R}/ingest/{{dataset}}/masks"),
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
