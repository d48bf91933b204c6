"""Which code ran (cxlseg.fingerprint): the sources' fingerprint by content."""

import shutil
from pathlib import Path

import cxlseg
from cxlseg.fingerprint import code_fingerprint


def test_code_fingerprint_is_the_content_of_package_and_scripts(tmp_path):
    package = Path(cxlseg.__file__).resolve().parent
    copy = tmp_path / "workflow"
    shutil.copytree(package, copy / "cxlseg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(package.parent / "scripts", copy / "scripts")
    assert code_fingerprint(copy / "cxlseg") == code_fingerprint()  # another checkout
    (copy / "cxlseg" / "__pycache__").mkdir()
    (copy / "cxlseg" / "__pycache__" / "x.py").write_text("compiled")
    assert code_fingerprint(copy / "cxlseg") == code_fingerprint()
    script = copy / "scripts" / "infer_shard.py"
    script.write_text(script.read_text() + "\n# a new release\n")
    assert code_fingerprint(copy / "cxlseg") != code_fingerprint()
