"""schemathesis hooks of `ranomaly conformance`: every call appended to the JSON-lines file that
RANOMALY_CONFORMANCE_CALLS names, as {"operation": label, "status": code}. Loaded by schemathesis through
SCHEMATHESIS_HOOKS; the schemathesis import waits until then, so `ranomaly.conformance` imports without it."""

from __future__ import annotations

import json
import os
from typing import Any

CALLS_ENV = "RANOMALY_CONFORMANCE_CALLS"


def _register() -> None:
    import schemathesis

    @schemathesis.hook
    def after_call(context: Any, case: Any, response: Any) -> None:
        with open(os.environ[CALLS_ENV], "a") as calls:
            calls.write(json.dumps({"operation": case.operation.label, "status": response.status_code}) + "\n")


if os.environ.get(CALLS_ENV):
    _register()
