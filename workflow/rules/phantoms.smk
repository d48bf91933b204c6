# Synthetic films: the demo archive (every native layout, when demo.enabled) and, in every run with the view
# check, its phantom side views and CTs.


rule demo:
    output:
        summary=f"{DEMO_OUT}/demo.json",
        metadata=demo_mimic_file("metadata"),
        chexpert=demo_mimic_file("chexpert"),
        split=demo_mimic_file("split"),
    log:
        f"{R}/logs/demo.log",
    benchmark:
        f"{R}/benchmarks/demo.tsv"
    conda:
        "../../envs/demo.yaml"
    params:
        **settings(DemoSpec),
    script:
        "../scripts/demo.py"


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
        **stage_resources("view_check"),
    params:
        **settings(ViewPhantomSettings),
    script:
        "../scripts/view_phantoms.py"


rule demo_archive:
    output:
        summary=f"{DEMO_ARCHIVE}.json",  # beside the archive: a folder archive would list a file inside it
    log:
        f"{R}/logs/demo_archive/{ARCHIVE.kind}.log",
    conda:
        "../../envs/demo.yaml"
    params:
        **settings(DemoArchiveSpec),
        root=lambda wc: DEMO_ARCHIVE,
    script:
        "../scripts/demo_archive.py"
