# Classifier comparison (paper Table III): each classifier on original vs segmented images.


rule classify:
    input:
        segmented=f"{R}/CXLSeg/CXLSeg-segmented.csv.gz",
        split=f"{R}/CXLSeg/CXLSeg-split.csv.gz",
    output:
        metrics=f"{R}/classify/{{model}}_{{kind}}/metrics.json",
        predictions=f"{R}/classify/{{model}}_{{kind}}/predictions.csv",
    log:
        f"{R}/logs/classify/{{model}}_{{kind}}.log",
    benchmark:
        f"{R}/benchmarks/classify/{{model}}_{{kind}}.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("classify", "cpus")
    resources:
        mem_mb=resource("classify", "mem_mb"),
        runtime=resource("classify", "runtime"),
        gpu=resource("classify", "gpu"),
        cpus_per_task=resource("classify", "cpus"),
    params:
        **settings(ClassifyRunSettings),
        mimic_root=lambda wc: mimic_root(),
    script:
        "../scripts/classify.py"


rule classify_summary:
    input:
        classify_runs(),
    output:
        table=report(f"{R}/classify/table3.csv", caption="../report/table3.rst", category="4. Classifier comparison"),
        markdown=f"{R}/classify/table3.md",
        all_labels=report(
            f"{R}/classify/table3_all_labels.csv",
            caption="../report/table3_all_labels.rst",
            category="4. Classifier comparison",
        ),
        all_labels_markdown=f"{R}/classify/table3_all_labels.md",
        roc=report(f"{R}/classify/roc.png", caption="../report/roc.rst", category="4. Classifier comparison"),
    log:
        f"{R}/logs/classify/summary.log",
    conda:
        "../../envs/segmentation.yaml"
    params:
        **settings(ClassifySummarySettings),
    script:
        "../scripts/classify_summary.py"
