# Every architecture on the test split, Table IV and the segmenter; the segmenter actually used, scored the same way.


rule evaluate:
    input:
        checkpoint=rules.train.output.checkpoint,
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
        **stage_resources("evaluate"),
    params:
        **settings(EvaluateSettings),
    script:
        "../scripts/evaluate.py"


rule select_model:
    input:
        summaries=expand(rules.evaluate.output.summary, arch=ARCHS),
        histories=expand(rules.train.output.history, arch=ARCHS),
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
        selected=rules.select_model.output.selected,
        checkpoints=expand(rules.train.output.checkpoint, arch=ARCHS),
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
        **stage_resources("evaluate"),
    params:
        **settings(InferSettings),
    script:
        "../scripts/evaluate_inference.py"
