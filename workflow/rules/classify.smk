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
        mem_mb=res("classify", "mem_mb", 32000),
        runtime=res("classify", "runtime", 720),
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
        table=f"{R}/classify/table3.csv",
        markdown=f"{R}/classify/table3.md",
        all_labels=f"{R}/classify/table3_all_labels.csv",
        all_labels_markdown=f"{R}/classify/table3_all_labels.md",
        roc=report(
            f"{R}/classify/roc.png",
            caption="../report/roc.rst",
            category="4. Classifier comparison",
            labels={"page": "3. ROC curves per label"},
        ),
    log:
        f"{R}/logs/classify/summary.log",
    benchmark:
        f"{R}/benchmarks/classify_summary.tsv"
    conda:
        "../../envs/segmentation.yaml"
    params:
        report_labels=config["classify"]["report_labels"],
    script:
        "../scripts/classify_summary.py"


rule table3_pages:
    input:
        table=f"{R}/classify/table3.csv",
        all_labels=f"{R}/classify/table3_all_labels.csv",
    output:
        table=report(
            f"{R}/report/table3.html",
            caption="../report/table3.rst",
            category="4. Classifier comparison",
            labels={"page": "1. Table III: the paper's 4 labels"},
        ),
        all_labels=report(
            f"{R}/report/table3_all_labels.html",
            caption="../report/table3_all_labels.rst",
            category="4. Classifier comparison",
            labels={"page": "2. Table III: every trained label"},
        ),
    log:
        f"{R}/logs/report/table3_pages.log",
    benchmark:
        f"{R}/benchmarks/table3_pages.tsv"
    conda:
        "../../envs/segmentation.yaml"
    params:
        results=lambda wc, input: str(Path(input.table).parents[1]),
        demo=DEMO,
    script:
        "../scripts/table3_pages.py"
