"""The apps' Redis ACL users, derived from the data layer's key names (`ranomaly_contracts.sdl`).

Each app has one user. Its rules are Redis 7 selectors, one per group of keys: the keys with the access
Redis checks on them (`%R~` read, `%W~` write, `~` both) and the commands the app runs on them, so that a
command allowed on one key is refused on every other. Commands that name no key (PING, MULTI, EXEC, what
redis-py sends on connecting) are in the root rules. No user may use pub/sub channels (nothing publishes),
and the default user is off: a connection that does not AUTH can run nothing.

The commands are those the apps' code calls (xapp/datalayer, rapp/collector.py, rapp/registry.py,
rapp/jobrecord.py, rapp/a1/policies.py, the audit stream); tests/test_redis_acl.py runs those code paths
as these users against a real redis-server. The e2sim does not use Redis. `ranomaly redis-acl` prints the
users for given passwords, as an aclfile or as ACL SETUSER commands; the charts render the same aclfile
from charts/*/files/redis-acl.json (`python scripts/chart_redis_acl.py` writes it from `chart_rules()`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from ranomaly_contracts.sdl import PREFIX, SdlKeys, sdl_keys

XAPP_USER = "ranomaly-xapp"
RAPP_USER = "ranomaly-rapp"
APP_USERS = {"xapp": XAPP_USER, "rapp": RAPP_USER}
PASSWORD_SHA256 = "#PASSWORD_SHA256"  # in chart_rules(): where a chart puts the password's hash
DEFAULT_OFF = "off resetpass resetkeys resetchannels -@all"  # the rules of the default user

Access = Literal["R", "W", "RW"]
_SELECTOR = {"R": "%R~", "W": "%W~", "RW": "~"}
# Health pings, SELECT (a URL naming a database other than 0) and the transactions both apps write in (MULTI
# ... EXEC; UNWATCH after an optimistic one). Not CLIENT SETINFO, which redis-py sends on connecting and does
# without: Redis 7.0 lacks it. On a Redis Cluster (`redis_cluster`), what redis-py's cluster client asks on
# connecting (the slot map, the command table, where a command's keys are) and ASKING while slots move.
_ROOT = ("ping", "select", "multi", "exec", "unwatch", "cluster|slots", "command", "asking")


@dataclass(frozen=True, slots=True)
class Grant:
    """Commands on a group of keys (`SdlKeys` field names), with the access Redis checks on them."""

    keys: tuple[str, ...]
    access: Access
    commands: tuple[str, ...]


_STREAM_WRITE = ("xadd", "xtrim", "xlen", "memory|usage")  # the xApp's bounded streams: append, trim, measure
XAPP_GRANTS = (
    Grant(("incidents",), "W", _STREAM_WRITE),
    # a replica taking a node reads back the verdicts written since the node's checkpoint (xapp/shard/checkpoint.py)
    Grant(("verdicts",), "RW", (*_STREAM_WRITE, "xrevrange", "xrange")),
    # the KPM stream's writer also reads the rApp group's position and the oldest entry left after a trim
    Grant(("kpm",), "RW", (*_STREAM_WRITE, "xinfo|groups", "xrange")),
    Grant(("cells",), "W", ("hset",)),
    Grant(("policy_types", "policy_instances"), "RW", ("hgetall", "hmget", "hset", "hdel")),
    Grant(("policy_changes",), "RW", ("xadd", "xread", "xrevrange", "xrange", "xlen")),
    Grant(("models_manifest", "models_onnx", "models_signature"), "R", ("hget",)),
    Grant(("models_promoted",), "R", ("lrange",)),
    # the newest signed promotion this xApp accepted (models.signing: a replayed older one is refused)
    Grant(("models_accepted",), "RW", ("hmget", "eval", "hget", "hset")),
    Grant(("audit",), "W", ("xadd",)),
    # sharded replicas (docs/scaling.md): heartbeats, node checkpoints, the network summary
    Grant(("xapp_replicas",), "RW", ("hset", "hdel", "hgetall")),
    Grant(("xapp_checkpoints",), "RW", ("hset", "hmget")),
    Grant(("network_summary",), "W", ("xadd",)),
)
# With a seed model (RANOMALY_XAPP_SEED_MODEL_DIR) the xApp publishes and promotes it when the registry lacks it.
XAPP_SEED_GRANTS = (
    Grant(("models_manifest", "models_onnx", "models_signature"), "W", ("hset",)),
    Grant(("models_promoted",), "RW", ("eval", "lpos", "rpush")),
)
RAPP_GRANTS = (
    # the collector: one consumer group on the xApp's KPM and incident streams (created with MKSTREAM)
    Grant(("kpm", "incidents"), "RW", ("xgroup|create", "xreadgroup", "xack")),
    Grant(("rapp_policies", "rapp_policy_types", "rapp_services", "rapp_jobs"), "RW", ("hgetall", "hset", "hdel")),
    # the model registry: publish, sign (at the next promotion counter) and promote artifacts, list and read them
    Grant(("models_manifest", "models_onnx"), "RW", ("hget", "hset")),
    Grant(("models_signature",), "W", ("hset",)),
    Grant(("models_counter",), "RW", ("incrby",)),
    Grant(("models_promoted",), "RW", ("lrange", "eval", "lpos", "rpush")),
    # the console: the cells' latest state, and operators' notes on incidents (WATCH ... MULTI)
    Grant(("cells",), "R", ("hgetall",)),
    Grant(("rapp_incident_notes",), "RW", ("hget", "hgetall", "hset", "watch")),
    Grant(("audit",), "W", ("xadd",)),
)


def grants(app: str, *, xapp_seeds: bool = False) -> tuple[Grant, ...]:
    """The grants of an app ("xapp" or "rapp"); `xapp_seeds`: the xApp publishes a seed model."""
    if app == "xapp":
        return XAPP_GRANTS + (XAPP_SEED_GRANTS if xapp_seeds else ())
    if app == "rapp":
        return RAPP_GRANTS
    raise ValueError(f"no Redis user for app {app!r} (xapp or rapp)")


def covered_keys() -> set[str]:
    """The `SdlKeys` fields some app's grants name."""
    every = (*XAPP_GRANTS, *XAPP_SEED_GRANTS, *RAPP_GRANTS)
    return {key for grant in every for key in grant.keys}


def _pattern(key: str) -> str:
    """A key name as an ACL pattern matching only itself (glob characters escaped)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", key)


def rules(app: str, *, prefix: str = PREFIX, xapp_seeds: bool = False) -> str:
    """An app user's ACL rules after its password: root commands, then one selector per grant."""
    keys = sdl_keys(prefix)
    names = {f.name for f in fields(SdlKeys)}
    parts = ["resetkeys resetchannels -@all", *(f"+{command}" for command in _ROOT)]
    for grant in grants(app, xapp_seeds=xapp_seeds):
        unknown = set(grant.keys) - names
        if unknown:
            raise ValueError(f"{app} grant names keys the data layer lacks: {sorted(unknown)}")
        patterns = [_SELECTOR[grant.access] + _pattern(getattr(keys, key)) for key in grant.keys]
        parts.append("(" + " ".join([*patterns, *(f"+{command}" for command in grant.commands)]) + ")")
    return " ".join(parts)


def password_hash(password: str) -> str:
    """The `#<sha256>` form of a password, as ACL rules store it."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def _line(app: str, hashed: str, *, prefix: str = PREFIX, xapp_seeds: bool = False) -> str:
    """An app user's whole rules, its password given as `#<sha256>`."""
    return f"reset on {hashed} {rules(app, prefix=prefix, xapp_seeds=xapp_seeds)}"


def users(passwords: Mapping[str, str], *, prefix: str = PREFIX, xapp_seeds: bool = False) -> dict[str, str]:
    """User name -> full rules (the password as its hash), for apps keyed "xapp" / "rapp", then the default user."""
    out = {}
    for app, name in APP_USERS.items():
        if app in passwords:
            out[name] = _line(app, password_hash(passwords[app]), prefix=prefix, xapp_seeds=xapp_seeds)
    out["default"] = f"reset {DEFAULT_OFF}"
    return out


def chart_rules() -> dict[str, Any]:
    """What the charts' templates build their aclfile from (charts/*/files/redis-acl.json): each app user's
    rules with PASSWORD_SHA256 where its password's hash goes (`seedLine`: the xApp with a seed model), and the
    default user's."""
    app_users = []
    for app, name in APP_USERS.items():
        user = {"app": app, "name": name, "line": _line(app, PASSWORD_SHA256)}
        if app == "xapp":
            user["seedLine"] = _line(app, PASSWORD_SHA256, xapp_seeds=True)
        app_users.append(user)
    return {"users": app_users, "default": f"reset {DEFAULT_OFF}"}


def aclfile(users_rules: Mapping[str, str]) -> str:
    """An aclfile (redis-server --aclfile) holding these users."""
    return "".join(f"user {name} {line}\n" for name, line in users_rules.items())


def setuser_commands(users_rules: Mapping[str, str]) -> list[list[str]]:
    """ACL SETUSER commands (argument lists) for these users; the default user's last, so that a client
    authenticated as the default user can send them all."""
    ordered = sorted(users_rules.items(), key=lambda item: item[0] == "default")
    return [["ACL", "SETUSER", name, *_split(line)] for name, line in ordered]


def _split(line: str) -> Iterable[str]:
    """ACL rule arguments: selectors stay whole, as ACL SETUSER takes them."""
    return re.findall(r"\([^)]*\)|\S+", line)
