"""How an app authenticates to Redis: an ACL user (`ranomaly_contracts.redis_acl`) and its password file.

Both apps name the user and the file in settings (`redis_username`, `redis_password_file`); the charts mount
the password from a Secret. A password in the URL (`redis://user:password@host`) is the other way redis-py
knows; settings refuse the two together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class RedisAuth:
    """An ACL user's name (None: the default user) and its password."""

    username: str | None
    password: str = field(repr=False)

    def redis_options(self) -> dict[str, Any]:
        """Keyword arguments of redis-py's `from_url`."""
        options: dict[str, Any] = {"password": self.password}
        if self.username is not None:
            options["username"] = self.username
        return options


def check_redis_auth(url: str, username: str | None, password_file: Path | None) -> None:
    """ValueError when the settings cannot work: a user without a password file, or credentials twice."""
    if username is not None and password_file is None:
        raise ValueError("redis_username needs redis_password_file (the user's password)")
    if password_file is not None and urlsplit(url).password is not None:
        raise ValueError("redis_url carries a password and redis_password_file names one: keep one of them")


def redis_auth(username: str | None, password_file: Path | None) -> RedisAuth | None:
    """The credentials named in settings, the password read now (one trailing newline dropped); None when the
    settings name none. OSError when the file cannot be read."""
    if password_file is None:
        return None
    password = password_file.read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    if not password:
        raise ValueError(f"redis_password_file {password_file.name} is empty")
    return RedisAuth(username, password)
