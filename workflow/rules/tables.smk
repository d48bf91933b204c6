# The CXLSeg tables from the shard manifests, and the quality-control report.


rule merge_tables:
    input:
        manifests=expand(f"{R}/infer/manifests/{{shard}}.parquet", shard=SHARDS),
        metadata=mimic_file("metadata"),
        chexpert=mimic_file("chexpert"),
        split=mimic_file("split"),
        cxlseg_split=cxlseg_split_file(),
        review=review_file(tables_only=True),
    output:
        metadata=f"{R}/CXLSeg/CXLSeg-metadata.csv.gz",
        segmented=f"{R}/CXLSeg/CXLSeg-segmented.csv.gz",
        split=f"{R}/CXLSeg/CXLSeg-split.csv.gz",
        mask=f"{R}/CXLSeg/CXLSeg-mask.csv.gz",
        failed=f"{R}/CXLSeg/CXLSeg-failed.csv.gz",
        summary=report(f"{R}/CXLSeg/summary.json", caption="../report/summary.rst", category="3. CXLSeg dataset"),
    log:
        f"{R}/logs/tables/merge.log",
    benchmark:
        f"{R}/benchmarks/merge_tables.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: resource("tables", "cpus")
    resources:
        mem_mb=resource("tables", "mem_mb"),
        runtime=resource("tables", "runtime"),
        gpu=resource("tables", "gpu"),
        cpus_per_task=resource("tables", "cpus"),
    params:
        **settings(MergeTablesSettings),
        reports_root=lambda wc: reports_root(),
        run=RunRecord.from_config(config),  # the config hash for summary.json: no rerun trigger
    script:
        "../scripts/merge_tables.py"


rule quality_table:
    input:
        manifests=expand(f"{R}/infer/manifests/{{shard}}.parquet", shard=SHARDS),
        review=review_file(),
    output:
        qc=f"{R}/CXLSeg/CXLSeg-qc.csv.gz",
    log:
        f"{R}/logs/tables/quality.log",
    conda:
        "../../envs/tables.yaml"
    threads: resource("tables", "cpus")
    resources:
        mem_mb=resource("tables", "mem_mb"),
        runtime=resource("tables", "runtime"),
        gpu=resource("tables", "gpu"),
        cpus_per_task=resource("tables", "cpus"),
    params:
        **settings(TablesSettings),
    script:
        "../scripts/quality_table.py"


rule qc_report:
    input:
        manifests=expand(f"{R}/infer/manifests/{{shard}}.parquet", shard=SHARDS),
        selection_summary=f"{R}/infer/selection_summary.json",
        qc_model=f"{R}/models/qc_calibration.json",
        calibration=f"{R}/models/qc_calibration.csv",
    output:
        markdown=report(f"{R}/qc/qc_report.md", caption="../report/qc.rst", category="3. CXLSeg dataset"),
        overlays=report(f"{R}/qc/flagged_overlays.jpg", caption="../report/overlays.rst", category="3. CXLSeg dataset"),
        dice_plot=report(
            f"{R}/qc/predicted_vs_true_dice.png", caption="../report/qc_dice.rst", category="3. CXLSeg dataset"
        ),
    log:
        f"{R}/logs/qc/report.log",
    benchmark:
        f"{R}/benchmarks/qc_report.tsv"
    conda:
        "../../envs/segmentation.yaml"
    params:
        **settings(QCReportSettings),
        out_root=lambda wc: f"{R}/CXLSeg",
        mimic_root=lambda wc: mimic_root(),
        truth=lambda wc: f"{DEMO_OUT}/mimic-truth" if DEMO else None,
    script:
        "../scripts/qc_report.py"


rule review_page:
    input:
        qc=f"{R}/CXLSeg/CXLSeg-qc.csv.gz",
        split=f"{R}/CXLSeg/CXLSeg-split.csv.gz",
    output:
        page=f"{R}/review/index.html",
        data=directory(f"{R}/review/data"),
    log:
        f"{R}/logs/review/page.log",
    benchmark:
        f"{R}/benchmarks/review_page.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: resource("tables", "cpus")
    resources:
        mem_mb=resource("tables", "mem_mb"),
        runtime=resource("tables", "runtime"),
        gpu=resource("tables", "gpu"),
        cpus_per_task=resource("tables", "cpus"),
    params:
        **settings(ReviewPageSettings),
    script:
        "../scripts/review_page.py"


rule run_report:
    input:
        tables=f"{R}/CXLSeg/summary.json",
        qc=f"{R}/qc/qc_report.md",
        selected=f"{R}/models/selected.json",
        qc_model=f"{R}/models/qc_calibration.json",
        comparison=f"{R}/models/comparison.csv",
        counts=f"{R}/training/counts.csv",
        selection_summary=f"{R}/infer/selection_summary.json",
        table3=[f"{R}/classify/table3.csv"] if config["classify"]["enabled"] else [],
    output:
        summary=report(f"{R}/report/summary.html", caption="../report/run_summary.rst", category="0. Summary"),
        tables=report(f"{R}/report/tables.html", caption="../report/run_tables.rst", category="0. Summary"),
        datasets=report(f"{R}/report/datasets.html", caption="../report/run_datasets.rst", category="0. Summary"),
        samples=report(f"{R}/report/samples.jpg", caption="../report/run_samples.rst", category="0. Summary"),
    log:
        f"{R}/logs/report/run_report.log",
    conda:
        "../../envs/segmentation.yaml"
    params:
        **settings(RunReportSettings),
        results=lambda wc, input: str(Path(input.selected).parents[1]),
    script:
        "../scripts/run_report.py"
