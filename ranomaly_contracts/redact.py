"""Text that leaves an app (API bodies, health, job logs) names the problem, never a server folder: an
absolute file path is cut to its last component ("/srv/var/history: no rows" reads "history: no rows").
URLs and HTTP request paths ("GET /policytypes/20100") stay whole."""

from __future__ import annotations

import re
from typing import Any

# An absolute path of at least two components, not inside a URL or a relative path (not after ':', '/' or a
# word character) nor an HTTP request's path (after its method), up to the first character that cannot be part
# of it.
_PATH = re.compile(r"(?<![\w:/.~-])(?<!GET )(?<!PUT )(?<!POST )(?<!DELETE )(?:/[\w.+@~%-]+){2,}/?")


def redact_paths(text: str) -> str:
    """The text with every absolute file path replaced by its last component."""
    return _PATH.sub(lambda match: match[0].rstrip("/").rsplit("/", 1)[-1], text)


def redact_all(value: Any) -> Any:
    """A JSON-like value with redact_paths applied to every string in it."""
    if isinstance(value, str):
        return redact_paths(value)
    if isinstance(value, dict):
        return {key: redact_all(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_all(item) for item in value]
    return value
