"""The cluster conda envs must pin exactly what pyproject.toml pins."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def project_pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        name, sep, version = dep.partition("==")
        assert sep, f"pyproject dependency not pinned with ==: {dep}"
        pins[name.lower()] = version
    return pins


def env_pins(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pins = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==?\s*([^\s]+)", item)
            if m and m.group(1) not in ("python", "pip"):
                pins[m.group(1).lower()] = m.group(2)
    return pins


def test_every_env_pins_match_pyproject():
    pins = project_pins()
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert envs, "no conda envs in envs/"
    for env in envs:
        got = env_pins(env)
        assert got, f"{env.name} pins nothing"
        for name, version in got.items():
            assert name in pins, f"{env.name}: {name} is not a dependency in pyproject.toml"
            assert version == pins[name], f"{env.name}: {name}=={version}, pyproject pins {pins[name]}"


def test_lock_file_agrees_with_pyproject():
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line:
            name, version = line.strip().split("==")
            lock[name.lower().replace("_", "-")] = version
    for name, version in project_pins().items():
        assert lock.get(name.replace("_", "-")) == version, f"requirements.lock disagrees on {name}"


def test_every_rule_env_exists():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for rel in re.findall(r'"\.\./\.\./(envs/[^"]+)"', smk.read_text()):
            assert (ROOT / rel).is_file(), f"{smk.name} names missing {rel}"
