"""`ranomaly conformance` (make conformance): our HTTP interfaces against the specifications they follow.

Each `Target` is one schemathesis run (4.32.5, the `conformance` extra): a spec, a real server the target
starts and seeds (`serve`), schemathesis settings that steer path ids and bodies toward the seeded data so
that every operation can answer 2xx, and the deviations docs/conformance.md allows, each an (operation,
failure code) pair. A run uses `--checks all`, a fixed seed and `examples` per operation; the hooks
(`ranomaly.conformance_hooks`) count each call by operation and status. It prints a line at least every
10 s, then a table per target (operation, calls, 2xx, failures; an allowed one marked `=`), and fails when a
failure is outside the table, an operation never answered 2xx, or schemathesis reported an error.

Adding a target (the rApp against the PMS v2 spec, or against its own OpenAPI): write a module beside
`ranomaly/conformance_xapp.py` with a function returning a `Target` (its spec, `serve`, settings and
deviations), add that function to `targets()`, and a row per deviation to docs/conformance.md (a test checks
that every deviation is there). `ranomaly conformance --only NAME` runs one target.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ranomaly.conformance_hooks import CALLS_ENV

PROGRESS_S = 10.0
Settings = dict[str, dict[str, Any] | list[dict[str, Any]]]  # schemathesis.toml: tables and arrays of tables
REQUEST_TIMEOUT_S = 5


@dataclass(frozen=True, slots=True)
class Deviation:
    """A failure the conformance table allows: schemathesis's label of the operation and its failure code."""

    operation: str  # e.g. "GET /A1-P/v2/policytypes/{policy_type_id}/policies"
    code: str  # e.g. "ST103" (`st explain ST103` says what it means)
    why: str  # one line; docs/conformance.md has the whole row


@dataclass(frozen=True, slots=True)
class Served:
    """A server under test: where it listens, the headers every request carries (a credential), and
    schemathesis dictionaries of ids its seeding made (a job's id)."""

    base_url: str
    headers: dict[str, str]
    dictionaries: dict[str, list[str]] = field(default_factory=dict)  # ids known once seeded, for the settings


@dataclass(frozen=True)
class Target:
    """One run: `serve(folder)` starts and seeds the server; `spec(folder)`, called then, writes the spec to
    test against and returns its path; `settings` is schemathesis.toml content (dictionaries, parameters);
    `deviations` what docs/conformance.md allows."""

    name: str
    spec: Callable[[Path], Path]
    serve: Callable[[Path], AbstractContextManager[Served]]
    settings: Settings = field(default_factory=dict)
    deviations: tuple[Deviation, ...] = ()


@dataclass
class Outcome:
    """What one target's run found."""

    calls: dict[str, Counter[int]]  # operation -> status -> count
    failures: dict[str, set[str]]  # operation -> failure codes
    errors: list[str]
    seconds: float

    def unexplained(self, deviations: Sequence[Deviation]) -> list[tuple[str, str]]:
        """Failures outside the table, as (operation, code)."""
        allowed = {(d.operation, d.code) for d in deviations}
        return sorted((op, code) for op, codes in self.failures.items() for code in codes if (op, code) not in allowed)

    def never_2xx(self) -> list[str]:
        """Operations that never answered 2xx."""
        return sorted(op for op, statuses in self.calls.items() if not any(200 <= s < 300 for s in statuses))


def targets() -> dict[str, Callable[[], Target]]:
    """Every target by name (imported when asked: each needs its app's extra)."""
    from ranomaly.conformance_rapp import pms_target
    from ranomaly.conformance_rapp_openapi import openapi_target
    from ranomaly.conformance_xapp import xapp_target

    return {"xapp-a1": xapp_target, "rapp-pms": pms_target, "rapp-openapi": openapi_target}


def toml(settings: Settings) -> str:
    """schemathesis.toml text of tables (a list of them: an array of tables) of scalars, lists and inline
    tables (JSON literals are TOML's)."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)

    lines: list[str] = []
    for name, tables in settings.items():
        for entries in tables if isinstance(tables, list) else [tables]:
            lines.append(f"[[{name}]]" if isinstance(tables, list) else f"[{name}]")
            lines += [f"{json.dumps(key)} = {value(v)}" for key, v in entries.items()]
            lines.append("")
    return "\n".join(lines)


def schemathesis_command(spec: Path, served: Served, config: Path, report: Path, examples: int, seed: int) -> list[str]:
    """The `st run` command line of one target."""
    st = Path(sys.executable).with_name("st")
    headers = [arg for name, v in served.headers.items() for arg in ("-H", f"{name}: {v}")]
    return [
        str(st), "--config-file", str(config), "run", str(spec), "--url", served.base_url, *headers,
        "--checks", "all", "--seed", str(seed), "--max-examples", str(examples), "--workers", "1",
        "--continue-on-failure", "--request-timeout", str(REQUEST_TIMEOUT_S),
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip


def run_target(target: Target, folder: Path, examples: int, seed: int) -> Outcome:
    """Start and seed the target's server, run schemathesis against it, and read what it found."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "schemathesis.toml"
    calls_file, report, log_file = folder / "calls.jsonl", folder / "report.json", folder / "schemathesis.log"
    calls_file.write_text("")
    report.unlink(missing_ok=True)  # a previous run's: never read as this one's
    began = time.monotonic()
    with target.serve(folder) as served:  # first: a spec may be the served document, a dictionary a seeded id
        spec = target.spec(folder)
        dictionaries = {f"dictionaries.{name}": {"values": values} for name, values in served.dictionaries.items()}
        config.write_text(toml({**target.settings, **dictionaries}))
        command = schemathesis_command(spec, served, config, report, examples, seed)
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "ranomaly.conformance_hooks", CALLS_ENV: str(calls_file)}
        with log_file.open("w") as log:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            while True:
                try:
                    child.wait(PROGRESS_S)
                    break
                except subprocess.TimeoutExpired:
                    calls = sum(1 for _ in calls_file.open())
                    print(f"[{target.name}] {time.monotonic() - began:.0f} s: {calls} calls", flush=True)
    return read_outcome(calls_file, report, log_file, time.monotonic() - began)


def read_outcome(calls_file: Path, report: Path, log_file: Path, seconds: float) -> Outcome:
    """The calls the hooks counted and the failures and errors of schemathesis's JSON report."""
    calls: dict[str, Counter[int]] = defaultdict(Counter)
    for line in calls_file.read_text().splitlines():
        call = json.loads(line)
        calls[call["operation"]][int(call["status"])] += 1
    if not report.exists():
        return Outcome(calls, {}, [f"schemathesis wrote no report; see {log_file}"], seconds)
    found = json.loads(report.read_text())
    failures: dict[str, set[str]] = defaultdict(set)
    for failure in found.get("failures", []):
        for operation in failure["operations"]:
            failures[operation].add(failure["code"])
    for operation in found.get("valid_rates", {}):
        calls.setdefault(operation, Counter())
    errors = [json.dumps(error) for error in found.get("errors", [])]
    return Outcome(dict(calls), dict(failures), errors, seconds)


def table(target: Target, outcome: Outcome) -> str:
    """The per-operation table: calls, 2xx answers, failure codes (`=`: allowed by the conformance table)."""
    allowed = {(d.operation, d.code) for d in target.deviations}
    rows = [("operation", "calls", "2xx", "failures")]
    for operation in sorted(set(outcome.calls) | set(outcome.failures)):
        statuses = outcome.calls.get(operation, Counter())
        codes = sorted(outcome.failures.get(operation, ()))
        marked = " ".join(f"{code}{'=' if (operation, code) in allowed else '!'}" for code in codes) or "-"
        ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
        rows.append((operation, str(sum(statuses.values())), str(ok), marked))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def main(only: Sequence[str] | None, folder: Path, examples: int = 100, seed: int = 1) -> int:
    """Run the targets (all, or those named); 0 when every one is clean, 1 otherwise."""
    known = targets()
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        print(f"ranomaly conformance: unknown targets {unknown}; known: {sorted(known)}", file=sys.stderr)
        return 2
    clean = True
    for name, make in known.items():
        if only and name not in only:
            continue
        target = make()
        print(f"[{name}] schemathesis, seed {seed}, {examples} examples per operation; files in {folder / name}")
        outcome = run_target(target, folder / name, examples, seed)
        print(f"\n{name} ({outcome.seconds:.0f} s)\n{table(target, outcome)}")
        problems = [f"failure outside docs/conformance.md: {op} {code}" for op, code in outcome.unexplained(
            target.deviations)] + [f"never answered 2xx: {op}" for op in outcome.never_2xx()] + [
            f"schemathesis error: {error}" for error in outcome.errors]  # fmt: skip
        for problem in problems:
            print(f"  {problem}")
        print(f"{name}: {'FAILED' if problems else 'clean'} (details: {folder / name / 'schemathesis.log'})\n")
        clean = clean and not problems
    return 0 if clean else 1
