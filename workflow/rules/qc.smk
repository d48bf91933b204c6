# Quality control without ground truth: the predicted-Dice model, calibrated on the store's validate and test
# images (clean and degraded) segmented as inference segments them.


rule calibrate_qc:
    input:
        selected=rules.select_model.output.selected,
        checkpoints=expand(rules.train.output.checkpoint, arch=ARCHS),
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
        **stage_resources("infer"),
    params:
        **settings(CalibrateSettings),
    script:
        "../scripts/calibrate_qc.py"
