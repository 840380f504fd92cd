"""`ranomaly redis-acl`: the apps' Redis ACL users (`ranomaly_contracts.redis_acl`) for given passwords, as an
aclfile (redis-server --aclfile) or as ACL SETUSER commands for redis-cli."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ranomaly_contracts.redis_acl import aclfile, setuser_commands, users
from ranomaly_contracts.redis_auth import redis_auth


def acl_text(args: argparse.Namespace) -> str:
    """What the command prints for its arguments."""
    files = {"xapp": args.xapp_password_file, "rapp": args.rapp_password_file}
    passwords = {}
    for app, path in files.items():
        auth = None if path is None else redis_auth(None, Path(path))
        if auth is not None:
            passwords[app] = auth.password
    if not passwords:
        raise ValueError("name at least one of --xapp-password-file and --rapp-password-file")
    rules = users(passwords, prefix=args.prefix, xapp_seeds=args.xapp_seeds)
    if args.setuser:
        return "".join(shlex.join(command) + "\n" for command in setuser_commands(rules))
    return aclfile(rules)


def cmd_redis_acl(args: argparse.Namespace) -> int:
    """Print the ACL users."""
    sys.stdout.write(acl_text(args))
    return 0


def add_commands(commands: Any) -> None:
    """Add `redis-acl` to the CLI's subcommands."""
    acl = commands.add_parser(
        "redis-acl",
        help="the xApp's and the rApp's Redis ACL users (default user off), as an aclfile or ACL SETUSER commands",
    )
    acl.add_argument("--xapp-password-file", help="file holding the xApp user's password (user ranomaly-xapp)")
    acl.add_argument("--rapp-password-file", help="file holding the rApp user's password (user ranomaly-rapp)")
    acl.add_argument(
        "--xapp-seeds", action="store_true",
        help="the xApp publishes a seed model (RANOMALY_XAPP_SEED_MODEL_DIR), so it may write the model registry",
    )  # fmt: skip
    acl.add_argument("--prefix", default="ranomaly", help="key prefix of the data layer (default: ranomaly)")
    acl.add_argument("--setuser", action="store_true", help="ACL SETUSER commands for redis-cli instead of an aclfile")
    acl.set_defaults(handler=cmd_redis_acl)
