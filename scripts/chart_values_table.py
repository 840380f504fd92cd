"""Values tables of the Helm charts' README.md, generated from the `## @param` comments of their values.yaml.

    python scripts/chart_values_table.py           # rewrite the table of every charts/*/README.md
    python scripts/chart_values_table.py --check   # only report: stale tables, undocumented or unknown values

In values.yaml, `## @section Title` starts a table and `## @param dotted.key Description` documents a value
(a map documented as a whole covers everything under it). The table goes between the README's markers
`<!-- values-table: begin -->` and `<!-- values-table: end -->`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- values-table: begin -->"
END = "<!-- values-table: end -->"
_SECTION = re.compile(r"^##\s+@section\s+(?P<title>.+?)\s*$")
_PARAM = re.compile(r"^##\s+@param\s+(?P<key>\S+)\s+(?P<description>.+?)\s*$")
_MISSING = object()


@dataclass(frozen=True)
class Param:
    """One documented value."""

    section: str
    key: str
    description: str


def parse_params(values_text: str) -> list[Param]:
    """The `## @param` comments of a values.yaml text, in order, each with its section."""
    section, params = "Values", []
    for line in values_text.splitlines():
        line = line.strip()
        if match := _SECTION.match(line):
            section = match["title"]
        elif match := _PARAM.match(line):
            params.append(Param(section, match["key"], match["description"]))
    return params


def lookup(values: Any, key: str) -> Any:
    """The value at a dotted key, or _MISSING."""
    node = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of every value that is not a non-empty map."""
    keys = []
    for name, value in values.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            keys.extend(_leaves(value, f"{key}."))
        else:
            keys.append(key)
    return keys


def problems(values_text: str, readme_text: str | None = None) -> list[str]:
    """What is wrong with a chart's documentation: unknown params, undocumented values, a stale README table."""
    values = yaml.safe_load(values_text) or {}
    params = parse_params(values_text)
    documented = {p.key for p in params}
    found = [f"@param {p.key}: no such value" for p in params if lookup(values, p.key) is _MISSING]
    for leaf in _leaves(values):
        parts = leaf.split(".")
        if not any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1)):
            found.append(f"{leaf}: no @param comment")
    if readme_text is not None and update_readme(readme_text, render_table(values_text)) != readme_text:
        found.append("README.md: the values table is stale (run python scripts/chart_values_table.py)")
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_table(values_text: str) -> str:
    """Markdown tables, one per section, of every documented value with its description and default."""
    values = yaml.safe_load(values_text) or {}
    params = parse_params(values_text)
    keys = {p.key for p in params}
    lines: list[str] = []
    section = None
    for param in params:
        if param.section != section:
            section = param.section
            lines += ["", f"### {section}", "", "| Name | Description | Default |", "| --- | --- | --- |"]
        value = lookup(values, param.key)
        has_children = isinstance(value, dict) and any(k.startswith(f"{param.key}.") for k in keys)
        default = "see below" if has_children else f"`{_cell(json.dumps(value))}`"
        lines.append(f"| `{param.key}` | {_cell(param.description)} | {default} |")
    return "\n".join(lines).strip() + "\n"


def update_readme(readme_text: str, table: str) -> str:
    """The README text with the table put between its markers."""
    start, end = readme_text.find(BEGIN), readme_text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md lacks the markers {BEGIN} and {END}")
    return f"{readme_text[: start + len(BEGIN)]}\n\n{table}\n{readme_text[end:]}"


def chart_dirs(root: Path = ROOT) -> list[Path]:
    """Every chart folder under charts/."""
    return sorted(path.parent for path in (root / "charts").glob("*/Chart.yaml"))


def main(argv: list[str] | None = None) -> int:
    """Check or rewrite the README tables; exit 1 when something is wrong."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report problems, write nothing")
    args = parser.parse_args(argv)
    failed = False
    for chart in chart_dirs():
        values_text = (chart / "values.yaml").read_text()
        readme = chart / "README.md"
        if not args.check:
            readme.write_text(update_readme(readme.read_text(), render_table(values_text)))
        for problem in problems(values_text, readme.read_text()):
            failed = True
            sys.stderr.write(f"{chart.relative_to(ROOT)}: {problem}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
