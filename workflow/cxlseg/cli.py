"""`cxlseg` command line: the steps a researcher runs by hand, outside Snakemake."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys


def _demo(args: argparse.Namespace) -> int:
    from cxlseg.config import default_config
    from cxlseg.phantoms.generate import generate_demo
    from cxlseg.phantoms.spec import DemoSpec

    given = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(DemoSpec) if getattr(args, f.name, None) is not None
    }
    spec = DemoSpec.from_config(default_config(), **given)
    summary = generate_demo(args.out, spec)
    keys = (
        "shenzhen",
        "montgomery",
        "v7",
        "mimic",
        "corrupt",
        "truncated",
        "missing",
        "studies_without_report",
        "studies_with_empty_report",
        "mislabelled_views",
    )
    print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2, default=str))
    return 0


def _config(args: argparse.Namespace) -> int:
    from cxlseg.config import ConfigError, load_config

    try:
        config = load_config(*args.configfiles)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    print(json.dumps(config, indent=2))
    return 0


def _check_run(args: argparse.Namespace) -> int:
    from cxlseg.tables.provenance import check_run

    check = check_run(args.results, scan_images=not args.skip_images)
    print(check.message(), file=sys.stdout if check.ok else sys.stderr)
    return 0 if check.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxlseg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="write the synthetic demo archive in every native layout")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--seed", type=int)
    demo.add_argument("--n-shenzhen", dest="n_shenzhen", type=int)
    demo.add_argument("--n-montgomery", dest="n_montgomery", type=int)
    demo.add_argument("--n-v7", dest="n_v7", type=int)
    demo.add_argument("--n-mimic-subjects", dest="n_mimic_subjects", type=int)
    demo.set_defaults(func=_demo)

    config = sub.add_parser("config", help="validate config files (merged left to right) and print the resolved config")
    config.add_argument("configfiles", nargs="+")
    config.set_defaults(func=_config)

    check = sub.add_parser(
        "check-run",
        help="exit 1 unless the CXLSeg tables describe the files on disk (no missing, changed or unfinished shard "
        "manifest; no mask written after the tables)",
    )
    check.add_argument("--results", default="results", help="the run's results folder (config key results)")
    check.add_argument("--skip-images", action="store_true", help="do not stat every mask and segmented image")
    check.set_defaults(func=_check_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
