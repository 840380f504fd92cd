"""An xApp replica in a process of its own, for tests that kill it (SIGKILL: no last checkpoint, no flush).

`python -m tests.xapp_process SPEC`, SPEC a JSON object: `redis_url`, `cluster` and `prefix` give the Redis
data layer (a key namespace of the test's), every other field is an `XappSettings` field. The child inherits the
test's environment (the trusted model key, the state folder).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from xapp.app import XappService
from xapp.datalayer.redis import RedisDataLayer
from xapp.settings import XappSettings


def spawn(spec: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    """Start a replica process with this SPEC; its stdout and stderr go to `log`."""
    with log.open("ab") as out:
        command = [sys.executable, "-m", "tests.xapp_process", json.dumps(spec, default=str)]
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parent.parent)


def main() -> None:
    """Run the replica the SPEC names until the process is killed."""
    spec = json.loads(sys.argv[1])
    layer = RedisDataLayer(spec.pop("redis_url"), prefix=spec.pop("prefix"), cluster=spec.pop("cluster"))
    asyncio.run(XappService(XappSettings(**spec), layer).run())


if __name__ == "__main__":
    main()
