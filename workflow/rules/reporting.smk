# What a researcher reads: the QC report, the review page, the run report's pages and Table III's pages.


rule qc_report:
    input:
        manifests=expand(rules.infer_shard.output.manifest, shard=SHARDS),
        selection_summary=rules.select_images.output.summary,
        qc_model=rules.calibrate_qc.output.model,
        calibration=rules.calibrate_qc.output.table,
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
        out_root=lambda wc: CXLSEG,
        mimic_root=lambda wc: mimic_root(),
        truth=lambda wc: f"{DEMO_OUT}/mimic-truth" if DEMO else None,
    script:
        "../scripts/qc_report.py"


rule review_page:
    input:
        qc=rules.quality_table.output.qc,
        split=rules.merge_tables.output.split,
        qc_model=rules.calibrate_qc.output.model,
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
        **stage_resources("tables"),
    params:
        **settings(ReviewPageSettings),
        thumbs=lambda wc: THUMBS,
    script:
        "../scripts/review_page.py"


rule archive_review_page:
    input:
        table=rules.archive_table.output.table,
        qc_model=rules.calibrate_qc.output.model,
    output:
        page=f"{A}/review/index.html",
        data=directory(f"{A}/review/data"),
    log:
        f"{R}/logs/archives/{ARCHIVE.kind}/review_page.log",
    benchmark:
        f"{R}/benchmarks/archives/{ARCHIVE.kind}/review_page.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: resource("tables", "cpus")
    resources:
        **stage_resources("tables"),
    params:
        **settings(ReviewPageSettings),
        thumbs=lambda wc: ARCHIVE_THUMBS,
    script:
        "../scripts/review_page.py"


rule archive_run_summary:
    input:
        listing=rules.list_archive.output.summary,
        table=rules.archive_table.output.table,
        qc_model=rules.calibrate_qc.output.model,
    output:
        summary=f"{A}/report/run_summary.json",
    log:
        f"{R}/logs/archives/{ARCHIVE.kind}/run_summary.log",
    benchmark:
        f"{R}/benchmarks/archives/{ARCHIVE.kind}/run_summary.tsv"
    conda:
        "../../envs/tables.yaml"
    threads: resource("tables", "cpus")
    resources:
        **stage_resources("tables"),
    params:
        **settings(ArchiveSettings),
    script:
        "../scripts/archive_run_summary.py"


rule archive_qc_report:
    input:
        table=rules.archive_table.output.table,
        qc_model=rules.calibrate_qc.output.model,
    output:
        html=report(
            f"{A}/qc/qc_report.html",
            caption="../report/archive_qc.rst",
            category=f"5. Archive {ARCHIVE.kind}",
            labels={"page": "2. QC report: failed and flagged images, QC model"},
        ),
        overlays=report(
            f"{A}/qc/flagged_overlays.jpg",
            caption="../report/overlays.rst",
            category=f"5. Archive {ARCHIVE.kind}",
            labels={"page": "3. Flagged masks (lowest predicted Dice)"},
        ),
        histogram=report(
            f"{A}/qc/predicted_dice.png",
            caption="../report/archive_dice.rst",
            category=f"5. Archive {ARCHIVE.kind}",
            labels={"page": "4. Predicted Dice of every mask"},
        ),
        summary=f"{A}/qc/qc_summary.json",
    log:
        f"{R}/logs/archives/{ARCHIVE.kind}/qc_report.log",
    benchmark:
        f"{R}/benchmarks/archives/{ARCHIVE.kind}/qc_report.tsv"
    conda:
        "../../envs/segmentation.yaml"
    threads: resource("tables", "cpus")
    resources:
        **stage_resources("tables"),
    params:
        **settings(RunReportSettings),
        thumbs=lambda wc: ARCHIVE_THUMBS,
    script:
        "../scripts/archive_qc_report.py"


rule archive_run_report:
    input:
        # ReportFiles' names (the segmenter, the QC model, the manifests, every job's benchmark) and the summary
        summary=rules.archive_run_summary.output.summary,
        selected=rules.select_model.output.selected,
        qc_model=rules.calibrate_qc.output.model,
        manifests=expand(rules.infer_archive_shard.output.manifest, ashard=ARCHIVE_SHARDS),
        benchmarks=lambda wc: archive_benchmark_files(),
    output:
        page=report(
            f"{A}/report/summary.html",
            caption="../report/archive_run.rst",
            category=f"5. Archive {ARCHIVE.kind}",
            labels={"page": "1. Run summary: images, segmenter, QC, time"},
        ),
    log:
        f"{R}/logs/archives/{ARCHIVE.kind}/run_report.log",
    benchmark:
        f"{R}/benchmarks/archives/{ARCHIVE.kind}/run_report.tsv"
    conda:
        "../../envs/segmentation.yaml"
    params:
        **settings(RunReportSettings),
    script:
        "../scripts/archive_run_report.py"


rule run_report:
    input:
        # every file the pages read (cxlseg.reporting.inputs.ReportFiles; a test checks the names)
        tables_summary=rules.quality_table.output.summary,
        metadata=rules.merge_tables.output.metadata,
        segmented=rules.merge_tables.output.segmented,
        split=rules.merge_tables.output.split,
        mask=rules.merge_tables.output.mask,
        failed=rules.merge_tables.output.failed,
        selection_summary=rules.select_images.output.summary,
        selected=rules.select_model.output.selected,
        used=rules.evaluate_inference.output.summary,
        qc_model=rules.calibrate_qc.output.model,
        qc_summary=rules.qc_report.output.summary,
        comparison=rules.select_model.output.table,
        counts=rules.augment.output.counts,
        store_images=store_file(f"{R}/training/store", "test", "images"),
        manifests=expand(rules.infer_shard.output.manifest, shard=SHARDS),
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
        images_root=lambda wc: CXLSEG,
        mimic_root=lambda wc: mimic_root(),
    script:
        "../scripts/run_report.py"


rule table3_pages:
    input:
        table3=rules.classify_summary.output.table,
        table3_all_labels=rules.classify_summary.output.all_labels,
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
        **settings(RunReportSettings),
    script:
        "../scripts/table3_pages.py"
