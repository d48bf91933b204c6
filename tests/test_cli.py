import json

from cxlseg.cli import main


def test_config_command_names_bad_keys(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("infer: {treshold: 0.4}\n")
    assert main(["config", str(bad)]) == 2
    assert "infer.treshold" in capsys.readouterr().err


def test_config_command_prints_resolved_defaults(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("train: {epochs: 3}\n")
    assert main(["config", str(good)]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["train"]["epochs"] == 3 and resolved["preprocess"]["size"] == 224


def test_demo_command_writes_every_layout(tmp_path, capsys):
    assert (
        main(
            [
                "demo",
                "--out",
                str(tmp_path / "demo"),
                "--n-shenzhen",
                "3",
                "--n-montgomery",
                "2",
                "--n-v7",
                "6",
                "--n-mimic-subjects",
                "4",
            ]
        )
        == 0
    )
    for sub in (
        "shenzhen/CXR_png",
        "montgomery/MontgomerySet/ManualMask/leftMask",
        "v7/annotations",
        "mimic-cxr-jpg/files",
    ):
        assert (tmp_path / "demo" / sub).is_dir(), sub
    printed = json.loads(capsys.readouterr().out)
    assert {"corrupt", "studies_without_report", "studies_with_empty_report", "mislabelled_views"} <= set(printed)


def test_import_turns_off_albumentations_update_check():
    """Compute nodes have no internet: importing the package must not let albumentations phone PyPI."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    code = "import os, cxlseg; print(os.environ.get('NO_ALBUMENTATIONS_UPDATE'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
