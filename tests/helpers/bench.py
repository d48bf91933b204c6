"""The benchmark commands of tests/bench, loaded as modules (they are commands, not a package)."""

from __future__ import annotations

from pathlib import Path


def load_bench(name: str):
    """A benchmark script of tests/bench as a module (they are commands, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
