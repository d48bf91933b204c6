# Segmentation models: train each architecture, evaluate on the test split, pick the best on validation;
# and the view check (frontal or not) that flags lateral, CT and other films labelled PA/AP, trained on phantoms,
# the store and a sample of the archive's own side views and frontal films.


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
        mem_mb=resource("train", "mem_mb"),
        runtime=resource("train", "runtime"),
        gpu=resource("train", "gpu"),
        cpus_per_task=resource("train", "cpus"),
    params:
        **settings(TrainConfig, "arch"),
    script:
        "../scripts/train.py"


rule evaluate:
    input:
        checkpoint=f"{R}/models/{{arch}}/checkpoint_best.pt",
        store=rules.augment.output.store,
    output:
        per_image=f"{R}/models/{{arch}}/test_per_image.csv",
        summary=f"{R}/models/{{arch}}/test_summary.json",
    log:
        f"{R}/logs/models/{{arch}}/evaluate.log",
    benchmark:
        f"{R}/benchmarks/evaluate/{{arch}}.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("evaluate", "cpus")
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
        gpu=resource("evaluate", "gpu"),
        cpus_per_task=resource("evaluate", "cpus"),
    params:
        **settings(EvaluateSettings),
    script:
        "../scripts/evaluate.py"


rule select_model:
    input:
        summaries=expand(f"{R}/models/{{arch}}/test_summary.json", arch=ARCHS),
        histories=expand(f"{R}/models/{{arch}}/history.csv", arch=ARCHS),
        models=expand(f"{R}/models/{{arch}}/model.json", arch=ARCHS),
    output:
        table=f"{R}/models/comparison.csv",
        markdown=f"{R}/models/comparison.md",
        curves=report(
            f"{R}/models/learning_curves.png",
            caption="../report/curves.rst",
            category="2. Segmentation models",
            labels={"page": "2. Learning curves"},
        ),
        selected=f"{R}/models/selected.json",
    log:
        f"{R}/logs/models/select.log",
    benchmark:
        f"{R}/benchmarks/select_model.tsv"
    conda:
        "../../envs/segmentation.yaml"
    params:
        **settings(SelectModelSettings),
    script:
        "../scripts/select_model.py"


rule evaluate_inference:
    input:
        selected=f"{R}/models/selected.json",
        checkpoints=expand(f"{R}/models/{{arch}}/checkpoint_best.pt", arch=ARCHS),
        store=rules.augment.output.store,
    output:
        per_image=f"{R}/models/inference/test_per_image.csv",
        summary=f"{R}/models/inference/test_summary.json",
    log:
        f"{R}/logs/models/evaluate_inference.log",
    benchmark:
        f"{R}/benchmarks/evaluate_inference.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("evaluate", "cpus")
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
        gpu=resource("evaluate", "gpu"),
        cpus_per_task=resource("evaluate", "cpus"),
    params:
        **settings(InferSettings),
    script:
        "../scripts/evaluate_inference.py"


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
