"""Generate the built-in synthetic CRM: ``python -m pipelines.generate --accounts N --out DIR``.

Writes the five contract tables (CSV or Parquet) and, under ``DIR/truth``, the truth behind
them: true propensity per row, true attribute importance per outcome, planted segments and
churn drivers. Same seed, same files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

from pipelines._cli import EXIT_CODES, console, new_parser, run_main, setup_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    codes = {0: "generated and written", 1: EXIT_CODES[1], 2: "bad arguments", 130: EXIT_CODES[130]}
    parser = new_parser("python -m pipelines.generate", __doc__, codes)
    parser.add_argument(
        "--accounts", type=int, default=20_000, help="number of accounts (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced atomically)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--extract-date", type=dt.date.fromisoformat, default=dt.date(2025, 12, 31),
        help="the export's date: no event is later (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format")
    args = parser.parse_args(argv)
    if args.accounts < 1:
        parser.error(f"--accounts must be at least 1, got {args.accounts}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # before any heavy import: --help and typos answer at once
    setup_logging()

    from icpkit.data.synthetic import generate_crm, write_synthetic_crm

    started = time.perf_counter()
    with console.status(f"generating {args.accounts:,} accounts…"):
        crm = generate_crm(args.accounts, args.seed, args.extract_date)
    with console.status(f"writing {args.out}…"):
        write_synthetic_crm(crm, args.out, args.format)
    for name, df in crm.tables.items():
        console.print(f"  {name:<14} {len(df):>10,} rows", highlight=False)
    console.print(
        f"wrote {args.out} (truth in {args.out / 'truth'}) in {time.perf_counter() - started:.1f}s",
        highlight=False,
    )
    return 0


if __name__ == "__main__":
    run_main(main)
