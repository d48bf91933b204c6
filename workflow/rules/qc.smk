# Quality control without ground truth: the predicted-Dice model calibrated on the store, and the view check
# (frontal or not) trained on phantom films, the store and a sample of the archive's own side and frontal films.


rule calibrate_qc:
    input:
        selected=f"{R}/models/selected.json",
        checkpoints=expand(f"{R}/models/{{arch}}/checkpoint_best.pt", arch=ARCHS),
        store=rules.augment.output.store,
    output:
        model=f"{R}/models/qc_calibration.json",
        table=f"{R}/models/qc_calibration.csv",
        plot=report(
            f"{R}/models/qc_calibration.png",
            caption="../report/qc_calibration.rst",
            category="2. Segmentation models",
            labels={"page": "3. QC calibration: predicted vs true Dice"},
        ),
    log:
        f"{R}/logs/models/calibrate_qc.log",
    benchmark:
        f"{R}/benchmarks/calibrate_qc.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("infer", "cpus")
    resources:
        mem_mb=resource("infer", "mem_mb"),
        runtime=resource("infer", "runtime"),
        gpu=resource("infer", "gpu"),
        cpus_per_task=resource("infer", "cpus"),
    params:
        **settings(CalibrateSettings),
    script:
        "../scripts/calibrate_qc.py"


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
        mem_mb=resource("view_check", "mem_mb"),
        runtime=resource("view_check", "runtime"),
        gpu=resource("view_check", "gpu"),
        cpus_per_task=resource("view_check", "cpus"),
    params:
        **settings(ViewSamplesSettings),
    script:
        "../scripts/view_samples.py"


rule view_phantoms:
    output:
        films=f"{R}/models/view_phantoms.npz",
    log:
        f"{R}/logs/models/view_phantoms.log",
    benchmark:
        f"{R}/benchmarks/view_phantoms.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("view_check", "cpus")
    resources:
        mem_mb=resource("view_check", "mem_mb"),
        runtime=resource("view_check", "runtime"),
        gpu=resource("view_check", "gpu"),
        cpus_per_task=resource("view_check", "cpus"),
    params:
        **settings(ViewPhantomSettings),
    script:
        "../scripts/view_phantoms.py"


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
        mem_mb=resource("view_check", "mem_mb"),
        runtime=resource("view_check", "runtime"),
        gpu=resource("view_check", "gpu"),
        cpus_per_task=resource("view_check", "cpus"),
    params:
        **settings(ViewCheckSettings),
        mimic_root=lambda wc: mimic_root(),
    script:
        "../scripts/train_view_check.py"
