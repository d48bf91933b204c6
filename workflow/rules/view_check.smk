# The view check (frontal chest film or not): trained on phantom films (rule view_phantoms), the training store
# and a sample of the archive's own side and frontal films; inference runs it on every image.


rule view_samples:
    input:
        demo_marker(),
        metadata=mimic_file("metadata"),
    output:
        samples=f"{R}/models/view_samples.parquet",
    log:
        f"{R}/logs/models/view_samples.log",
    benchmark:
        f"{R}/benchmarks/view_samples.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("view_check", "cpus")
    resources:
        **stage_resources("view_check"),
    params:
        **settings(ViewSamplesSettings),
    script:
        "../scripts/view_samples.py"


rule train_view_check:
    input:
        store=rules.augment.output.store,
        films=rules.view_phantoms.output.films,
        samples=rules.view_samples.output.samples,
    output:
        checkpoint=f"{R}/models/view_check.pt",
        metrics=f"{R}/models/view_check.json",
    log:
        f"{R}/logs/models/view_check.log",
    benchmark:
        f"{R}/benchmarks/train_view_check.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("view_check", "cpus")
    resources:
        **stage_resources("view_check"),
    params:
        **settings(ViewCheckSettings),
        mimic_root=lambda wc: mimic_root(),
    script:
        "../scripts/train_view_check.py"
