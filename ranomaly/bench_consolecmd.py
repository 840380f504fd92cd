"""`ranomaly bench console`: the console's page times (`ranomaly.bench_console`), added to the bench commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def cmd_bench_console(args: argparse.Namespace) -> int:
    """Time the console's pages in chromium over a seeded network; print the figures against the targets."""
    from ranomaly.bench_console import format_figures, run_console_bench

    figures = run_console_bench(args.cells, args.runs)
    print(format_figures(figures))  # noqa: T201
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def add_command(bench: Any) -> None:
    """Add `console` to the bench subcommands."""
    console = bench.add_parser("console", help="the operator console's page times in chromium")
    console.add_argument("--cells", type=int, default=10_000, help="cells of the network view")
    console.add_argument("--runs", type=int, default=3, help="loads of each page (the median is printed)")
    console.add_argument("--json", help="also write the figures to this JSON file")
    console.set_defaults(handler=cmd_bench_console)
