"""Scope names, and what an authenticated caller holds.

Scopes nest: `ranomaly:admin` holds `ranomaly:policies`, which holds `ranomaly:read`. Reads need READ,
A1 policy writes need POLICIES, training jobs and model rollbacks need ADMIN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

READ = "ranomaly:read"
POLICIES = "ranomaly:policies"
ADMIN = "ranomaly:admin"
ALL = frozenset({READ, POLICIES, ADMIN})
_IMPLIED = {ADMIN: (POLICIES, READ), POLICIES: (READ,)}


def expand(granted: frozenset[str] | set[str]) -> frozenset[str]:
    """The scopes granted plus those they hold."""
    return frozenset(granted).union(*(_IMPLIED.get(scope, ()) for scope in granted))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: a token's subject, "api-key", or "anonymous" while auth is off."""

    subject: str
    scopes: frozenset[str]
    via: Literal["token", "api-key", "off"]

    def holds(self, needed: list[str]) -> bool:
        """Whether every needed scope is granted (directly or held by a granted one)."""
        return set(needed) <= expand(self.scopes)
