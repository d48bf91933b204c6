"""Benchmark (not a CI test): the human band, reader 1 against reader 2 on the films both outlined (#33).

No network is involved: the band is what a model is judged against (bench_real_v7 reports the model against
each reader on the same films, at the same 224 px). Reader 1 is index.csv `mask` (V7 labs), reader 2
`second_mask` (radiologists, outlined independently). Scored at the films' own resolution and at the pipeline's
store size (area-resized as bench_real_v7 resizes), per release, with where the two outlines part: the share of
the pixels they disagree on that lie in the lowest quarter of the lungs' height (the hazy bases), and whether
reader 2's lungs reach lower.

    python tests/bench/bench_readers.py --data ../shared/data/v7-real --json docs/bench/readers-human-band.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from cxlseg.io import ImageReadError, read_mask, safe_join
from cxlseg.metrics import dice
from cxlseg.preprocess import resize_mask

sys.path.insert(0, str(Path(__file__).resolve().parent))
import readers  # noqa: E402
import record  # noqa: E402


def lowest_row(mask: np.ndarray) -> int:
    rows = np.flatnonzero(mask.any(axis=1))
    return int(rows[-1]) if rows.size else -1


def base_share(reader1: np.ndarray, reader2: np.ndarray) -> float:
    """Share of the disagreeing pixels in the lowest quarter of the union's height (NaN: they agree exactly)."""
    union = reader1 | reader2
    rows = np.flatnonzero(union.any(axis=1))
    differ = reader1 ^ reader2
    if not rows.size or not differ.any():
        return float("nan")
    base = rows[-1] - (rows[-1] - rows[0] + 1) // 4
    return float(differ[base + 1 :].sum() / differ.sum())


def film_row(data_dir: Path, row: pd.Series, size: int) -> dict | None:
    """One film's agreement, or None where reader 2 did not outline it (or an outline cannot be read)."""
    try:
        reader1 = read_mask(safe_join(data_dir, row["mask"])) > 0
    except (ImageReadError, ValueError) as exc:
        print(f"skipped {row['mask']}: {exc}", file=sys.stderr)
        return None
    outline = readers.read_second(data_dir, row.get("second_mask"), reader1.shape)
    if outline is None:
        return None
    reader2 = outline > 0
    small1, small2 = resize_mask(reader1.astype(np.uint8), size) > 0, resize_mask(reader2.astype(np.uint8), size) > 0
    height = reader1.shape[0]
    return {
        "image": row["image"],
        "patient_id": str(row["patient_id"]),
        "release": int(row["release"]) if "release" in row else None,
        "dice_native": dice(reader1, reader2),
        f"dice_{size}": dice(small1, small2),
        "disagreement_at_base": base_share(reader1, reader2),
        "reader2_lower_by": (lowest_row(reader2) - lowest_row(reader1)) / height,  # > 0: reader 2 reaches lower
    }


def summary(films: pd.DataFrame, size: int) -> dict:
    blocks = {"all": films, **{f"release {r}": g for r, g in films.groupby("release")}}
    return {
        name: {
            "dice_native": readers.dice_stats(g["dice_native"]),
            f"dice_{size}": readers.dice_stats(g[f"dice_{size}"]),
            "patients": int(g["patient_id"].nunique()),
            "disagreement_at_base_median": float(g["disagreement_at_base"].median()),
            "reader2_lower_share": float((g["reader2_lower_by"] > 0).mean()),
            "reader2_lower_by_median": float(g["reader2_lower_by"].median()),
        }
        for name, g in blocks.items()
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="v7-real folder holding index.csv and the masks")
    parser.add_argument("--size", type=int, default=224, help="pipeline store size (px) the models are scored at")
    parser.add_argument("--json", type=Path, default=None, help="write the summary and every film's row here")
    args = parser.parse_args(argv)
    index = readers.read_index(args.data)
    rows = [r for r in (film_row(args.data, row, args.size) for _, row in index.iterrows()) if r is not None]
    if not rows:
        raise SystemExit(f"{args.data / 'index.csv'}: no film with a readable second_mask")
    films = pd.DataFrame(rows)
    result = {"size": args.size, "summary": summary(films, args.size), "films": films.to_dict("records")}
    for name, block in result["summary"].items():
        for key in ("dice_native", f"dice_{args.size}"):
            s = block[key]
            print(f"{name:<10} {key:<12} mean {s['mean']:.4f}  p5 {s['p5']:.4f}  min {s['min']:.4f}  n {s['n']}")
        print(
            f"{'':<10} disagreement in the lowest quarter: median {block['disagreement_at_base_median']:.0%}; "
            f"reader 2 reaches lower on {block['reader2_lower_share']:.0%} of films "
            f"(median {block['reader2_lower_by_median']:+.1%} of the film's height)"
        )
    print("least agreement:", films.nsmallest(3, "dice_native")[["image", "dice_native"]].to_dict("records"))
    if args.json:
        record.write(args.json, result, __file__, argv)
    return result


if __name__ == "__main__":
    main()
