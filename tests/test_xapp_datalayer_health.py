"""Health on a degraded data layer, and the streams' memory in /metrics: the xApp service on a real redis-server."""

from __future__ import annotations

import re
from pathlib import Path

from ranomaly.redis_process import RedisServer
from tests.test_sdl_encoding import make_incident
from tests.test_xapp_hardening_service import Running, model_folder
from tests.waiting import until
from xapp.datalayer.redis import RedisDataLayer


def gauge(text: str, name: str, stream: str) -> float:
    """A labelled gauge's value in a Prometheus exposition."""
    found = re.search(rf'^{name}{{stream="{stream}"}} (\S+)$', text, re.MULTILINE)
    assert found is not None, f"{name}{{stream={stream!r}}} not in /metrics"
    return float(found.group(1))


async def test_readyz_fails_while_the_data_layer_is_degraded_past_its_bound_and_recovers(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    layer = RedisDataLayer(redis.url, connect_timeout_s=0.2, timeout_s=1.0, retry_max_s=0.1, stream_sample_s=0.01)
    xapp = Running(layer, seed_model_dir=model_folder(tmp_path, "t1"), datalayer_degraded_s=0.5)
    try:
        await xapp.service.scoring.wait()
        assert (await xapp.http("GET", "/readyz")).status_code == 200
        redis.stop()
        layer.write_incident(make_incident())  # a write that cannot go out: buffered, retried
        await until(lambda: layer.health().degraded, "the data layer degraded")
        assert (await xapp.http("GET", "/readyz")).status_code == 200, "not unready before the bound"

        async def unready() -> bool:
            return (await xapp.http("GET", "/readyz")).status_code == 503

        await until(unready, "/readyz failing past the bound")
        body = (await xapp.http("GET", "/healthz")).json()
        (problem,) = [p for p in body["problems"] if p.startswith("data layer")]
        assert (
            "data layer (redis) degraded for" in problem and "(bound 0.5 s): disconnected; writes buffered 1" in problem
        )
        assert body["datalayer"]["degraded_s"] >= 0.5  # past the bound, shown to a tenth of a second
        redis.start()

        async def ready() -> bool:
            return (await xapp.http("GET", "/readyz")).status_code == 200

        await until(ready, "/readyz ready again once Redis is back")
        assert layer.health().degraded_s == 0
        assert [event for _, event in await layer.read_incidents()] == [make_incident()], "the buffered write went out"
        text = (await xapp.http("GET", "/metrics")).text
        stream = layer.health().streams["incidents"]
        assert gauge(text, "ranomaly_xapp_stream_memory_bytes", "incidents") == stream.memory_bytes > 0
        assert gauge(text, "ranomaly_xapp_stream_entry_limit", "incidents") == stream.entry_limit
        assert stream.entry_limit == int(xapp.service.settings.incident_stream_bytes // stream.entry_bytes)
    finally:
        await xapp.stop()
        redis.stop()
