"""`cxlseg` command line: the steps a researcher runs by hand, outside Snakemake."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys


def _demo(args: argparse.Namespace) -> int:
    from cxlseg.config import default_config
    from cxlseg.phantoms import DemoSpec, generate_demo

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
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
