# What a researcher reads: the QC report, the review page, the run report's pages.


rule qc_report:
    input:
        manifests=expand(f"{R}/infer/manifests/{{shard}}.parquet", shard=SHARDS),
        selection_summary=f"{R}/infer/selection_summary.json",
        qc_model=f"{R}/models/qc_calibration.json",
        calibration=f"{R}/models/qc_calibration.csv",
    output:
        markdown=f"{R}/qc/qc_report.md",
        html=report(
            f"{R}/qc/qc_report.html",
            caption="../report/qc.rst",
            category="3. CXLSeg dataset",
            labels={"page": "1. QC report: status, failed and flagged images, QC model"},
        ),
        summary=f"{R}/qc/qc_summary.json",
        overlays=report(
            f"{R}/qc/flagged_overlays.jpg",
            caption="../report/overlays.rst",
            category="3. CXLSeg dataset",
            labels={"page": "2. Flagged masks (lowest predicted Dice)"},
        ),
        dice_plot=report(
            f"{R}/qc/predicted_vs_true_dice.png",
            caption="../report/qc_dice.rst",
            category="3. CXLSeg dataset",
            labels={"page": "3. Predicted vs true Dice"},
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
        qc_model=f"{R}/models/qc_calibration.json",
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
        thumbs=lambda wc: f"{R}/review/thumbs",  # infer_shard's thumbs_dir, one folder per shard
    script:
        "../scripts/review_page.py"


rule run_report:
    input:
        # every file the pages read (cxlseg.reporting.inputs.ReportFiles; a test checks the names)
        tables_summary=f"{R}/CXLSeg/summary.json",
        metadata=f"{R}/CXLSeg/CXLSeg-metadata.csv.gz",
        segmented=f"{R}/CXLSeg/CXLSeg-segmented.csv.gz",
        split=f"{R}/CXLSeg/CXLSeg-split.csv.gz",
        mask=f"{R}/CXLSeg/CXLSeg-mask.csv.gz",
        failed=f"{R}/CXLSeg/CXLSeg-failed.csv.gz",
        selection_summary=f"{R}/infer/selection_summary.json",
        selected=f"{R}/models/selected.json",
        used=f"{R}/models/inference/test_summary.json",
        qc_model=f"{R}/models/qc_calibration.json",
        qc_summary=f"{R}/qc/qc_summary.json",
        comparison=f"{R}/models/comparison.csv",
        counts=f"{R}/training/counts.csv",
        store_images=store_file(f"{R}/training/store", "test", "images"),
        manifests=expand(f"{R}/infer/manifests/{{shard}}.parquet", shard=SHARDS),
        benchmarks=lambda wc: benchmark_files(),
    output:
        summary=report(
            f"{R}/report/summary.html",
            caption="../report/run_summary.rst",
            category="0. Run summary",
            labels={"page": "1. Run summary: images, segmenter, QC, time"},
        ),
        datasets=report(
            f"{R}/report/datasets.html",
            caption="../report/run_datasets.rst",
            category="0. Run summary",
            labels={"page": "2. Dataset tables (first rows)"},
        ),
        samples=report(
            f"{R}/report/samples.jpg",
            caption="../report/run_samples.rst",
            category="0. Run summary",
            labels={"page": "3. Sample masks on their films"},
        ),
        comparison=report(
            f"{R}/report/comparison.html",
            caption="../report/comparison.rst",
            category="2. Segmentation models",
            labels={"page": "1. Table IV: models on the test split"},
        ),
        counts=report(
            f"{R}/report/counts.html",
            caption="../report/counts.rst",
            category="1. Training data",
            labels={"page": "1. Images per split and class"},
        ),
    log:
        f"{R}/logs/report/run_report.log",
    benchmark:
        f"{R}/benchmarks/run_report.tsv"
    conda:
        "../../envs/segmentation.yaml"
    params:
        **settings(RunReportSettings),
        images_root=lambda wc: f"{R}/CXLSeg",  # what the manifests' mask paths are relative to (infer_shard's out_root)
        mimic_root=lambda wc: mimic_root(),
    script:
        "../scripts/run_report.py"
