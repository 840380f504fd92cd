"""`ranomaly console`: the demo's stack with the operator console, until Ctrl-C (`ranomaly.console_stack`).

The stack loads only when it runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any


def cmd_console(args: argparse.Namespace) -> int:
    """Serve the console over a simulated network until interrupted, or write its screenshots and stop."""
    from ranomaly.console_stack import run_console

    try:
        return asyncio.run(run_console(args.cells, args.hours, args.seed, Path(args.work), args.port,
                                       not args.template_reports,
                                       None if args.screenshots is None else Path(args.screenshots),
                                       args.timeout_s))  # fmt: skip
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, SIGTERM: every process it started is stopped
        print("ranomaly console: stopped", file=sys.stderr)
        return 0


def add_commands(commands: Any) -> None:
    """Add `console` to the CLI's subcommands."""
    console = commands.add_parser("console", help="simulator, xApp and rApp with the operator console, until Ctrl-C")
    console.add_argument("--cells", type=int, default=60)
    console.add_argument("--hours", type=float, default=12.0, help="simulated hours streamed before it waits")
    console.add_argument("--seed", type=int, default=7)
    console.add_argument("--work", default=".demo", help="folder for the training data and model (the demo's)")
    console.add_argument("--port", type=int, default=8090, help="the rApp's port (the console is under /console)")
    console.add_argument("--template-reports", action="store_true", help="reports without the language model")
    console.add_argument("--screenshots", help="write a screenshot of each page into this folder, then stop")
    console.add_argument("--timeout-s", type=float, default=3600.0, help="bound on each wait while it starts")
    console.set_defaults(handler=cmd_console)
