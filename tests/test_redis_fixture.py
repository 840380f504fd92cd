"""The Redis fixture gives a real server over a real connection."""

from __future__ import annotations

import redis


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
