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
    threads: 4
    resources:
        mem_mb=grows_on_retry(res("classify", "mem_mb", 32000)),
        runtime=grows_on_retry(res("classify", "runtime", 720)),
        gpu=res("classify", "gpu", 1),
        cpus_per_task=res("classify", "cpus", 8),
    params:
        mimic_root=lambda wc: mimic_root(),
        # rerun triggers (the script reads the whole validated config); which runs exist and which labels the
        # summary reports change no run's outputs
        classify={
            k: v for k, v in outcome_settings("classify").items() if k not in ("enabled", "models", "report_labels")
        },
        seed=config["seed"],
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
        report_labels=config["classify"]["report_labels"],
    script:
        "../scripts/classify_summary.py"
