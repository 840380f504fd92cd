"""The charts' Redis ACL rules (charts/xapp and charts/rapp files/redis-acl.json), from ranomaly_contracts.redis_acl.

python scripts/chart_redis_acl.py           # write them
python scripts/chart_redis_acl.py --check   # only report a file that differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ranomaly_contracts.redis_acl import chart_rules

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "charts" / chart / "files" / "redis-acl.json" for chart in ("xapp", "rapp")]


def expected() -> str:
    """The files' text."""
    return json.dumps(chart_rules(), indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale files, write nothing")
    args = parser.parse_args()
    stale = [path for path in FILES if not path.is_file() or path.read_text() != expected()]
    if args.check:
        for path in stale:
            sys.stderr.write(f"{path.relative_to(ROOT)} is stale: python scripts/chart_redis_acl.py\n")
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected())
    return 0


if __name__ == "__main__":
    sys.exit(main())
