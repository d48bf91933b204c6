"""Config loading and validation against the JSON schema (one place, used by the Snakefile and the CLI)."""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import re
import typing
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The config has an unknown or ill-typed key; the message names it."""


@functools.cache
def _schema() -> dict:
    """The parsed schema, read once per process for this module's lookups (the DAG build asks once per settings
    object, and every Slurm job builds the DAG again); snakemake's `validate` still reads the file itself, since it
    resolves the schema's `$ref`s from its path. Read-only; `load_schema` hands out copies."""
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_schema() -> dict:
    return copy.deepcopy(_schema())


def _key(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = _key(error)
        names = ", ".join(f"{where}.{k}" if where != "<top level>" else k for k in extra)
        valid = ", ".join(sorted(error.schema.get("properties", {})))
        return f"unknown config key {names} (valid here: {valid})"
    return f"config key {_key(error)}: {error.message}"


def validate_config(config: dict) -> dict:
    """Validate in place, fill defaults, and raise ConfigError listing every bad key."""
    schema = _schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_describe(e) for e in errors))
    from snakemake.utils import validate

    validate(config, str(SCHEMA_PATH), set_default=True)
    _check_sums(config)
    _check_split_source(config)
    return config


def _check_sums(config: dict) -> None:
    for section, keys in (("training_split", ("train", "validate", "test")), ("tables", ("train", "validate", "test"))):
        total = sum(config[section][k] for k in keys)
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"config key {section}: {'+'.join(keys)} must sum to 1, got {total:g}")


def _check_split_source(config: dict) -> None:
    tables = config["tables"]
    if tables["split_source"] == "cxlseg" and not tables["cxlseg_split"]:
        raise ConfigError(
            "config key tables.cxlseg_split: split_source cxlseg needs the path of a published CXLSeg-split.csv.gz"
        )


def load_config(*paths: os.PathLike | str, overrides: dict | None = None) -> dict:
    """Merge YAML files left to right (later wins), apply overrides, validate."""
    config: dict = {}
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            deep_update(config, yaml.safe_load(fh) or {})
    if overrides:
        deep_update(config, copy.deepcopy(overrides))
    return validate_config(config)


def deep_update(base: dict, other: dict) -> dict:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def shard_ids(shards, chunks: int = 1) -> list[str]:
    """Inference job ids: one per subject prefix ('p10'), or 'p10-c0'.. when a prefix is spread over several jobs."""
    if chunks < 1:
        raise ValueError(f"chunks_per_shard must be >= 1, got {chunks}")
    ids = [s if chunks == 1 else f"{s}-c{c}" for s in shards for c in range(chunks)]
    bad = [s for s in ids if not re.fullmatch(r"p[0-9]{2}(-c[0-9]+)?", s)]
    if bad:
        raise ValueError(f"shard ids must look like p10 or p10-c0, got {bad}")
    return ids


# --- settings: a validated config section -> one frozen dataclass, in one step -------------------


@functools.lru_cache(maxsize=1)
def _defaults() -> dict:
    config: dict = {}
    from snakemake.utils import validate

    validate(config, str(SCHEMA_PATH), set_default=True)
    return config


def default_config() -> dict:
    """Every key at its schema default (a fresh copy): what a run with an empty config file gets."""
    return copy.deepcopy(_defaults())


def _section_schema(section: str) -> dict:
    return _schema()["properties"][section]


def schema_enum(section: str, key: str) -> tuple:
    """The values the schema allows for `section.key` (of its items, for a list): the one list of valid names."""
    node = _section_schema(section)["properties"][key]
    return tuple(node.get("items", node)["enum"])


def speed_only_keys(section: str) -> frozenset[str]:
    """Keys of a section marked `speed_only: true` in the schema: they change how fast a job runs, never what it
    writes, so they stay out of rule params (no rerun) and may change between a kill and a resume."""
    props = _section_schema(section).get("properties", {})
    return frozenset(k for k, v in props.items() if v.get("speed_only"))


def build_settings(cls, values: dict, **overrides):
    """A settings dataclass from a validated config section: one field per key, nested sections as nested
    dataclasses. Defaults live in the schema only, so every field must be given; extra keys are ignored."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in overrides:
            value = overrides[f.name]
        elif f.name in values:
            value = values[f.name]
        else:
            raise ConfigError(f"{cls.__name__}: config has no key {f.name!r}")
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = build_settings(kind, value)
        elif isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, dict):
            value = dict(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def section_defaults(section: str) -> dict:
    """One config section at its schema defaults."""
    return default_config()[section]


# --- one settings object per rule ---------------------------------------------------------------


def _plain(value):
    """JSON-plain and key-sorted, so the same settings always give the same rerun trigger."""
    if dataclasses.is_dataclass(value):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class RuleSettings:
    """Mixin of a rule's frozen settings: common.smk builds it from the validated config and passes it as the rule's
    `params.settings`, which is all the rule's script reads. Snakemake cannot represent the object, so it is no rerun
    trigger; `outcome()` (passed as `params.outcome`) is: every field but the speed-only keys of `SECTIONS` (marked
    in the schema) and `NOT_OUTCOME`, so tuning speed on a cluster reruns nothing."""

    SECTIONS: typing.ClassVar[tuple[str, ...]] = ()
    NOT_OUTCOME: typing.ClassVar[frozenset[str]] = frozenset()

    def outcome(self) -> dict:
        skip = self.NOT_OUTCOME.union(*(speed_only_keys(s) for s in self.SECTIONS))
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        return _plain({k: v.outcome() if isinstance(v, RuleSettings) else v for k, v in values.items()})

    def with_workers(self, threads: int, reserve: int = 0):
        """The same settings with loader workers capped by the cores the job got (`snakemake.threads`), `reserve`
        of them left to the main process: a speed-only change."""
        return dataclasses.replace(self, num_workers=min(self.num_workers, max(threads - reserve, 0)))
