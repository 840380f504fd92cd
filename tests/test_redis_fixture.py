"""The Redis fixture gives a real server over a real connection."""

from __future__ import annotations

import socket
from pathlib import Path

import redis

from ranomaly.redis_process import RedisServer


def test_redis_fixture_serves_strings_and_streams(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        client.set("ranomaly:test:key", "value")
        assert client.get("ranomaly:test:key") == "value"
        first = client.xadd("ranomaly:test:stream", {"n": "1"})
        client.xadd("ranomaly:test:stream", {"n": "2"})
        entries = client.xrange("ranomaly:test:stream", min=first)
        assert [fields["n"] for _, fields in entries] == ["1", "2"]
        assert client.info("server")["redis_version"]
    finally:
        client.delete("ranomaly:test:key", "ranomaly:test:stream")
        client.close()


def test_a_server_whose_port_was_taken_meanwhile_starts_on_another(tmp_path: Path) -> None:
    """Choosing a free port and binding it are two steps: another process may take it in between."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = RedisServer(tmp_path)
        server.port = taken.getsockname()[1]
        server.start()
        try:
            assert server.port != taken.getsockname()[1]
            assert redis.Redis.from_url(server.url).ping()
        finally:
            server.stop()
