# Classifier comparison (paper Table III): each classifier on original vs segmented images.


rule classify:
    input:
        segmented=rules.merge_tables.output.segmented,
        split=rules.merge_tables.output.split,
    output:
        metrics=f"{R}/classify/{{model}}_{{kind}}/metrics.json",
        predictions=f"{R}/classify/{{model}}_{{kind}}/predictions.csv",
        skipped=f"{R}/classify/{{model}}_{{kind}}/skipped.csv",
    log:
        f"{R}/logs/classify/{{model}}_{{kind}}.log",
    benchmark:
        f"{R}/benchmarks/classify/{{model}}_{{kind}}.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("classify", "cpus")
    resources:
        **stage_resources("classify"),
    params:
        **settings(ClassifyRunSettings),
        images_root=lambda wc: CXLSEG,
        mimic_root=lambda wc: mimic_root(),
    script:
        "../scripts/classify.py"


rule classify_summary:
    input:
        metrics=classify_runs(),
        predictions=classify_runs("predictions.csv"),
        skipped=classify_runs("skipped.csv"),
    output:
        table=f"{R}/classify/table3.csv",
        markdown=f"{R}/classify/table3.md",
        all_labels=f"{R}/classify/table3_all_labels.csv",
        all_labels_markdown=f"{R}/classify/table3_all_labels.md",
        skipped=f"{R}/classify/skipped.csv",
        predictions=[f"{R}/classify/predictions_{run}.csv" for run in classify_run_names()],
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
        **settings(ClassifySummarySettings),
    script:
        "../scripts/classify_summary.py"
