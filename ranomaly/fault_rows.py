"""The rows of `ranomaly faults`: one fault each, against real processes (ranomaly.fault_rig).

Each row fills a RowResult (ranomaly.faults): counts, checks that say what was expected and what was found,
and extra figures. Hostile-input rows script a node in this process and send its indications in bursts
anchored on the wall clock's current period (a 1 s period); the simulator rows use `ranomaly sim serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from models.artifact import MANIFEST_FILE, MODEL_FILE, artifact_bytes_digest
from models.signing import load_signing_key, sign
from ranomaly.bench_a1 import A1Load, a1_elsewhere
from ranomaly.fault_rig import (
    MEASUREMENTS,
    App,
    Rig,
    RowFailed,
    Scrape,
    ScriptedNode,
    Streams,
    delta,
    history_rows,
    indication,
    model_folder,
    signing_keys,
    until,
)
from ranomaly.redis_process import RedisServer, free_port
from ranomaly_contracts.auth.apikey import read_api_key

if TYPE_CHECKING:
    from ranomaly.faults import RowResult

P_SLOW = 1_000  # ms: hostile rows, replay, restarts
P_FAST = 100  # ms: rows that measure latency or fill streams in real time
LAG_TARGET_S = 0.1
YEARS_10_MS = 10 * 365 * 86_400_000
K = len(MEASUREMENTS)


class Context:
    """What a row started, stopped in reverse order when it ends (whatever the reason)."""

    def __init__(self, folder: Path, status: Callable[[str], None]) -> None:
        self.folder = folder
        self.status = status
        self.rig = Rig(folder)
        self._closers: list[Callable[[], Awaitable[None] | None]] = []

    def model(self, period_ms: int, version: str | None = None) -> Path:
        return model_folder(self.folder.parent / "models", period_ms, version or f"faults-{period_ms}ms")

    def redis(self) -> RedisServer:
        server = RedisServer(self.folder)
        server.start(30.0)
        self._closers.append(server.stop)
        return server

    def streams(self, redis_url: str) -> Streams:
        streams = Streams(redis_url)
        self._closers.append(streams.close)
        return streams

    def on_close(self, closer: Callable[[], Awaitable[None] | None]) -> None:
        self._closers.append(closer)

    async def close(self) -> None:
        await self.rig.close()
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                done = closer()
                if done is not None:
                    await done


def now_period(period_ms: int) -> int:
    return int(time.time() * 1000) // period_ms * period_ms


def count_xapp(result: RowResult, before: Scrape, after: Scrape) -> None:
    """Scored (gaps apart), gaps, dropped by reason and the loop lag between two scrapes of the xApp."""
    scored = after.value("ranomaly_xapp_scored_rows_total") - before.value("ranomaly_xapp_scored_rows_total")
    gaps = after.value("ranomaly_xapp_gap_rows_total") - before.value("ranomaly_xapp_gap_rows_total")
    result.scored, result.gaps = int(scored - gaps), int(gaps)
    dropped = delta(after.by("ranomaly_xapp_refused_rows_total", "reason"),
                    before.by("ranomaly_xapp_refused_rows_total", "reason"))  # fmt: skip
    late = int(after.value("ranomaly_xapp_late_rows_total") - before.value("ranomaly_xapp_late_rows_total"))
    dropped.pop("late", None)  # late_rows counts every late row (also those skipped by a restarted count)
    if late:
        dropped["late"] = late
    result.dropped = dropped
    result.lag_s = after.lag_bucket(before)


async def settle(result: RowResult, app: App, before: Scrape, timeout_s: float = 20.0) -> Scrape:
    """Scrape until every row sent is scored or dropped (or timeout_s: unaccounted shows what is not)."""

    async def accounted() -> bool:
        count_xapp(result, before, await app.http.scrape())
        return result.unaccounted == 0

    with contextlib.suppress(RowFailed):
        await until("every row sent to be scored or dropped", accounted, timeout_s)
    after = await app.http.scrape()
    count_xapp(result, before, after)
    return after


def expect_common(result: RowResult, app: App) -> None:
    """What every xApp row expects: the process runs, nothing unaccounted, the loop lag within the target."""
    code = app.child.exit_code()
    result.expect(code is None, "the xApp runs on" if code is None else f"the xApp exited with status {code}: "
                  + " | ".join(app.child.tail(3)))  # fmt: skip
    if result.unaccounted is not None:
        result.expect(result.unaccounted == 0, f"every row sent is scored or dropped under a reason "
                      f"(unaccounted {result.unaccounted:,})")  # fmt: skip
    lag = result.lag_s
    shown = "?" if lag is None else f"<= {lag * 1000:g} ms" if lag != float("inf") else "> 60 s"
    result.expect(lag is not None and lag <= LAG_TARGET_S,
                  f"the xApp's event loop lagged at most {LAG_TARGET_S * 1000:g} ms (largest: {shown})")  # fmt: skip


async def hostile(ctx: Context, nodes: dict[str, list[str]], **settings: Any) -> tuple[ScriptedNode, App, Streams,
                                                                                        Scrape]:  # fmt: skip
    """Redis, a scripted E2 node and an xApp subscribed to it; the xApp's metrics before anything is sent."""
    redis = ctx.redis()
    node = ScriptedNode(nodes)
    port = await node.start()
    ctx.on_close(node.stop)
    ctx.status("starting the xApp")
    xapp = ctx.rig.xapp(ctx.model(P_SLOW), port, redis.url, period_ms=P_SLOW, **settings)
    await xapp.start()

    async def subscribed() -> bool:
        if xapp.child.exit_code() is not None:
            raise RowFailed(f"the xApp exited with status {xapp.child.exit_code()}: " + " | ".join(xapp.child.tail(3)))
        return node.subscribed.is_set()

    await until("the xApp to subscribe to the scripted node", subscribed, 60.0)
    ctx.status("sending")
    return node, xapp, ctx.streams(redis.url), await xapp.http.scrape()


def cells(node: str, n: int) -> list[str]:
    return [f"{node}-c{i}" for i in range(n)]


async def forwarded(result: RowResult, streams: Streams) -> None:
    """KPM rows forwarded; each row scored (gaps apart) is forwarded once, nothing else."""
    await asyncio.sleep(0.5)  # the writer drains every few ms; this is a read after it, not a bound
    await streams.read()
    result.forwarded = streams.kpm_rows
    result.expect(result.forwarded == result.scored and len(streams.kpm_keys) == streams.kpm_rows,
                  f"forwarded to ranomaly:kpm = scored, no row twice ({streams.kpm_rows:,} forwarded, "
                  f"{len(streams.kpm_keys):,} distinct (cell, period), {result.scored:,} scored)")  # fmt: skip


# --- 1-3: hostile E2 input ----------------------------------------------------------------------------------------


async def huge_start(ctx: Context, result: RowResult) -> None:
    node_cells = cells("h1", 4)
    node, xapp, streams, before = await hostile(ctx, {"h1": node_cells})
    t = now_period(P_SLOW)
    node.send(indication("h1", t, P_SLOW, node_cells))
    huge = (2**63 - P_SLOW, 2**63 - 2**63 % P_SLOW, 2**64 - 1 - (2**64 - 1) % P_SLOW, 2**64 - 1)
    for start in huge:
        node.send(indication("h1", start, P_SLOW, node_cells))
    for p in (1, 2):
        node.send(indication("h1", t + p * P_SLOW, P_SLOW, node_cells))
    result.sent = node.sent_rows
    await settle(result, xapp, before)
    expect_common(result, xapp)
    refused = sum(result.dropped.values())
    result.expect(refused == 4 * len(huge), f"the {4 * len(huge)} rows of the {len(huge)} collection starts near 2^63 "
                  f"and 2^64 are refused ({refused:,})")  # fmt: skip
    result.expect(result.scored == 12, f"the 12 rows around them are scored ({result.scored})")
    await forwarded(result, streams)


async def future_start(ctx: Context, result: RowResult) -> None:
    node_cells = cells("h1", 4)
    node, xapp, streams, before = await hostile(ctx, {"h1": node_cells})
    t = now_period(P_SLOW)
    node.send(indication("h1", t, P_SLOW, node_cells))
    node.send(indication("h1", t + YEARS_10_MS, P_SLOW, node_cells))
    for p in range(1, 10):
        node.send(indication("h1", t + p * P_SLOW, P_SLOW, node_cells))
    result.sent = node.sent_rows
    await settle(result, xapp, before)
    expect_common(result, xapp)
    result.expect(
        sum(result.dropped.values()) == 4 and "late" not in result.dropped,
        f"only the 4 rows 10 years ahead are dropped, none of the later rows as late ({result.dropped})",
    )
    result.expect(result.scored == 40, f"the 40 normal rows are scored ({result.scored})")
    ready = await xapp.http.request("GET", "/readyz")
    result.expect(ready.status_code == 200, f"/readyz answers 200 after it ({ready.status_code})")
    await forwarded(result, streams)


async def cell_flood(ctx: Context, result: RowResult) -> None:
    node_cells = cells("h1", 4)
    node, xapp, streams, before = await hostile(ctx, {"h1": node_cells})
    t = now_period(P_SLOW)
    node.send(indication("h1", t, P_SLOW, node_cells))
    node.send(indication("h1", t + P_SLOW, P_SLOW, cells("h1-x", 50_000)))  # one indication, 50,000 new cells
    node.send(indication("stranger", t + P_SLOW, P_SLOW, cells("s", 10_000)))  # a node no subscription lists
    for p in (1, 2):
        node.send(indication("h1", t + p * P_SLOW, P_SLOW, node_cells))
    result.sent = node.sent_rows
    began = time.monotonic()
    answer = await xapp.http.request("GET", "/metrics", timeout_s=30)
    result.figures["metrics_answered_s"] = round(time.monotonic() - began, 3)
    after = await settle(result, xapp, before)
    expect_common(result, xapp)
    refused = sum(result.dropped.values())
    result.expect(refused == 60_000, f"the 60,000 flood rows are refused ({refused:,})")
    result.expect(result.scored == 12, f"the 12 normal rows are scored ({result.scored})")
    tracked = int(after.value("ranomaly_xapp_cells"))
    result.figures["cells_tracked"] = tracked
    result.expect(answer.status_code == 200 and tracked <= 1024, f"/metrics answers during the flood and cells tracked "
                  f"stay within the per-node cap ({tracked})")  # fmt: skip
    await forwarded(result, streams)


async def far_gap(ctx: Context, result: RowResult) -> None:
    node_cells = cells("h1", 4)
    node, xapp, streams, before = await hostile(ctx, {"h1": node_cells})
    t = now_period(P_SLOW)
    node.send(indication("h1", t, P_SLOW, node_cells))
    far = t + YEARS_10_MS
    for p in range(5):  # the node insists: after CLOCK_RESTART_AFTER starts it is taken to have restarted
        node.send(indication("h1", far + p * P_SLOW, P_SLOW, node_cells))
    result.sent = node.sent_rows
    after = await settle(result, xapp, before)
    expect_common(result, xapp)
    restarts = int(after.value("ranomaly_xapp_gap_restarts_total") - before.value("ranomaly_xapp_gap_restarts_total"))
    clocks = int(after.value("ranomaly_xapp_clock_restarts_total") - before.value("ranomaly_xapp_clock_restarts_total"))
    result.figures |= {"gap_restarts": restarts, "clock_restarts": clocks, "missing_periods": YEARS_10_MS // P_SLOW}
    result.expect(result.gaps <= 4 * 10 + 4 * 60, f"a gap of {YEARS_10_MS // P_SLOW:,} periods makes no more gap rows "
                  f"than the bound ({result.gaps:,}; {restarts} cell counts restarted)")  # fmt: skip
    await forwarded(result, streams)


async def bad_values(ctx: Context, result: RowResult) -> None:
    h1, h2 = cells("h1", 4), cells("h2", 2)
    node, xapp, streams, before = await hostile(ctx, {"h1": h1, "h2": h2})
    t = now_period(P_SLOW)
    node.send(indication("h1", t, P_SLOW, h1), indication("h2", t, P_SLOW, h2))
    negative = [10.0] * (len(h1) * K)
    negative[0] = -5.0  # a negative PRB count in h1-c0
    node.send(indication("h1", t + P_SLOW, P_SLOW, h1, negative))
    node.send(indication("h2", t + P_SLOW, P_SLOW, [*h2, h1[2]]))  # h2 reports a cell of h1
    node.send(indication("h1", t + 2 * P_SLOW, P_SLOW, [*h1, ""]))  # an empty cell id
    node.send(indication("h2", t + 2 * P_SLOW, P_SLOW, h2))
    result.sent = node.sent_rows
    after = await settle(result, xapp, before)
    expect_common(result, xapp)
    masked = int(after.value("ranomaly_xapp_masked_values_total") - before.value("ranomaly_xapp_masked_values_total"))
    result.figures["masked_values"] = masked
    result.expect(masked == 1, f"the negative count is masked as no value ({masked})")
    result.expect(
        result.dropped.get("wrong_node", 0) == 1 and result.dropped.get("empty_cell", 0) == 1,
        f"the wrong-node cell and the empty cell id are refused, each under its reason ({result.dropped})",
    )
    others = node.sent_rows - 2
    result.expect(result.scored == others, f"every other row (the masked one too) is scored ({result.scored} of "
                  f"{others})")  # fmt: skip
    await forwarded(result, streams)


# --- simulator rows ------------------------------------------------------------------------------------------------


async def sim_rig(ctx: Context, cells_n: int, pace: str, period_ms: int, periods: int = 0, rapp: bool = False,
                  **settings: Any) -> tuple[RedisServer, int, App, App | None, Streams]:  # fmt: skip
    """Redis, `sim serve`, an xApp subscribed to it (and an rApp on its A1-P endpoint)."""
    redis = ctx.redis()
    port = free_port()
    ctx.rig.sim(port, cells_n, pace, periods).start()
    ctx.status("starting the xApp")
    xapp = ctx.rig.xapp(ctx.model(period_ms), port, redis.url, period_ms=period_ms, **settings)
    await xapp.start()
    app = None
    if rapp:
        ctx.status("starting the rApp")
        app = ctx.rig.rapp(redis.url, xapp.http.port)
        await app.start()
    streams = ctx.streams(redis.url)
    streams.period_ms = period_ms
    return redis, port, xapp, app, streams


async def scored_at_least(xapp: App, rows: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        if xapp.child.exit_code() is not None:
            raise RowFailed(f"the xApp exited with status {xapp.child.exit_code()}")
        return (await xapp.http.scrape()).value("ranomaly_xapp_scored_rows_total") >= rows

    return check


def received(scrape: Scrape, before: Scrape | None = None) -> int:
    """Rows the xApp received: accepted (late ones among them) and refused under any other reason."""

    def total(s: Scrape) -> float:
        refused = s.by("ranomaly_xapp_refused_rows_total", "reason")
        return s.value("ranomaly_xapp_cell_reports_total") + sum(v for k, v in refused.items() if k != "late")

    return int(total(scrape) - (total(before) if before is not None else 0.0))


async def quiet(xapp: App, timeout_s: float = 60.0) -> None:
    """Wait until the xApp scores nothing more (its cells released after the stream stopped) and its buffers are
    empty, so that its counts and the streams can be compared."""
    last = -1.0

    async def still() -> bool:
        nonlocal last
        scrape = await xapp.http.scrape()
        scored = scrape.value("ranomaly_xapp_scored_rows_total")
        done = scored == last and scrape.value("ranomaly_xapp_datalayer_buffered") == 0
        last = scored
        return done

    await until("the xApp to go quiet (every cell released, buffers empty)", still, timeout_s, poll_s=1.5)


async def replay(ctx: Context, result: RowResult) -> None:
    cells_n, periods = 24, 120
    _, _, xapp, rapp, streams = await sim_rig(ctx, cells_n, "accelerated", P_SLOW, periods, rapp=True,
                                              release_after_periods=5)  # fmt: skip
    assert rapp is not None
    before, started = Scrape(""), await xapp.http.scrape()
    ctx.status("waiting for the stream to end twice (the xApp resubscribes each time)")

    async def resubscribed() -> bool:
        return (await xapp.http.scrape()).value("ranomaly_xapp_e2_reconnects_total") >= 3

    await until("the xApp to resubscribe twice", resubscribed, 120.0)
    await ctx.rig.children[0].stop()  # the simulator: what was sent is final
    ctx.status("waiting for the xApp to go quiet")
    await quiet(xapp, 90.0)
    after = await xapp.http.scrape()
    streams_seen = int(after.value("ranomaly_xapp_e2_reconnects_total"))
    result.sent = received(after)
    count_xapp(result, before, after)
    result.lag_s = after.lag_bucket(started)  # from the xApp's first answer: its start is not the fault
    await streams.read()
    result.forwarded = streams.kpm_rows
    ctx.status("waiting for the rApp to store what was forwarded")

    async def stored() -> bool:
        return history_rows(ctx.folder / "history")[1] >= len(streams.kpm_keys)

    with contextlib.suppress(RowFailed):
        await until("the rApp to store every forwarded row", stored, 60.0, poll_s=1.0)
    rows, distinct = history_rows(ctx.folder / "history")
    result.stored = rows
    dupes = int((await rapp.http.scrape()).value("ranomaly_rapp_history_duplicates_total"))
    result.figures |= {"streams_opened": streams_seen, "sim_rows_per_stream": cells_n * periods,
                       "forwarded_distinct": len(streams.kpm_keys), "stored_distinct": distinct,
                       "history_duplicates_refused": dupes}  # fmt: skip
    expect_common(result, xapp)
    result.expect(result.forwarded == len(streams.kpm_keys) == result.scored,
                  f"forwarded = scored, no (cell, period) twice ({result.forwarded:,} forwarded, "
                  f"{len(streams.kpm_keys):,} distinct, {result.scored:,} scored)")  # fmt: skip
    result.expect(rows == distinct == len(streams.kpm_keys), f"0 duplicate rows in the history ({rows:,} rows, "
                  f"{distinct:,} distinct (cell, period), {len(streams.kpm_keys):,} forwarded)")  # fmt: skip
    result.expect(result.scored == len(streams.kpm_keys), f"each (cell, period) received is scored once "
                  f"({result.scored:,} scored, {len(streams.kpm_keys):,} distinct)")  # fmt: skip


async def e2_restart(ctx: Context, result: RowResult) -> None:
    cells_n = 24
    _, port, xapp, _, streams = await sim_rig(ctx, cells_n, "realtime", P_SLOW)
    await until("the xApp to score", await scored_at_least(xapp, 4 * cells_n), 60.0)
    before, running = Scrape(""), await xapp.http.scrape()  # counts since the start, the lag from now
    await asyncio.sleep(3 * P_SLOW / 1000)
    ctx.status("E2 node killed; restarting it")
    await ctx.rig.children[0].stop(signal.SIGKILL)
    warm_before = running.value("ranomaly_xapp_scored_rows_total", status="warming_up")
    killed = await xapp.http.scrape()
    ctx.rig.sim(port, cells_n, "realtime").start()

    async def resumed() -> bool:
        return (await xapp.http.scrape()).value("ranomaly_xapp_scored_rows_total") >= killed.value(
            "ranomaly_xapp_scored_rows_total") + 4 * cells_n  # fmt: skip

    await until("the xApp to score the restarted node", resumed, 60.0)
    await asyncio.sleep(2 * P_SLOW / 1000)
    after = await xapp.http.scrape()
    result.sent = received(after, before)
    count_xapp(result, before, after)
    result.lag_s = after.lag_bucket(running)
    gaps_before = int(running.value("ranomaly_xapp_gap_rows_total"))
    expect_common(result, xapp)
    warm = int(after.value("ranomaly_xapp_scored_rows_total", status="warming_up") - warm_before)
    result.figures |= {"warming_up_rows_after": warm, "cells_tracked": int(after.value("ranomaly_xapp_cells"))}
    result.expect(warm == 0, f"no cell warms up again ({warm} warming-up rows)")
    restart_gaps = result.gaps - gaps_before
    result.expect(
        restart_gaps > 0 and restart_gaps % cells_n == 0,
        f"the periods the node missed are scored as gaps, every cell alike ({restart_gaps})",
    )
    result.expect(int(after.value("ranomaly_xapp_cells")) == cells_n, "the xApp keeps its cells")
    await streams.read()
    result.forwarded = streams.kpm_rows
    result.expect(result.forwarded == result.scored, f"forwarded = scored ({result.forwarded:,}, {result.scored:,})")


async def redis_outage(ctx: Context, result: RowResult) -> None:
    cells_n = 200
    redis, _, xapp, _, streams = await sim_rig(ctx, cells_n, "realtime", P_FAST, verdict_buffer=2_000)
    await until("the xApp to score", await scored_at_least(xapp, 10 * cells_n), 60.0)
    before = Scrape("")  # every count since the xApp started, and the streams from their first entry
    lag_from = await xapp.http.scrape()
    await streams.read()
    assert redis._process is not None
    ctx.status("redis-server stopped (SIGSTOP) for 5 s")
    redis._process.send_signal(signal.SIGSTOP)
    ctx.on_close(lambda: redis._process.send_signal(signal.SIGCONT) if redis._process else None)
    await asyncio.sleep(5.0)
    redis._process.send_signal(signal.SIGCONT)
    ctx.status("redis-server back; the stream goes on for 3 s")
    await asyncio.sleep(3.0)
    streaming = await xapp.http.scrape()  # gap rows until here: cells missing periods while they streamed
    await ctx.rig.children[0].stop()  # the simulator: nothing more to score

    ctx.status("waiting for the xApp to go quiet")
    await quiet(xapp)
    after = await xapp.http.scrape()
    result.sent = received(after, before)
    count_xapp(result, before, after)
    result.lag_s = after.lag_bucket(lag_from)
    await streams.read()
    written = streams.verdict_rows
    scored_all = int(after.value("ranomaly_xapp_scored_rows_total") - before.value("ranomaly_xapp_scored_rows_total"))
    dropped = after.by("ranomaly_xapp_datalayer_dropped", "kind")
    dropped_before = before.by("ranomaly_xapp_datalayer_dropped", "kind")
    lost_verdicts = int(dropped.get("verdicts", 0) - dropped_before.get("verdicts", 0))
    lost_kpm = int(dropped.get("kpm", 0) - dropped_before.get("kpm", 0))
    result.forwarded = streams.kpm_rows
    streaming_gaps = int(streaming.value("ranomaly_xapp_gap_rows_total"))
    result.figures |= {
        "gap_rows_while_streaming": streaming_gaps,
        "gap_rows_after_the_stream": result.gaps - streaming_gaps,  # each cell's silent periods until released
        "verdict_rows_scored": scored_all,
        "verdict_rows_in_redis": written,
        "verdict_rows_dropped_counted": lost_verdicts,
        "kpm_indications_dropped_counted": lost_kpm,
    }
    result.expect(xapp.child.exit_code() is None, "the xApp runs on")
    result.expect(result.unaccounted == 0, f"every row received is scored or dropped ({result.unaccounted})")
    result.expect(streaming_gaps == 0, f"no gap rows while every cell reported ({streaming_gaps:,})")
    result.expect(lost_verdicts > 0 and written + lost_verdicts == scored_all,
                  f"every verdict dropped is counted, exactly: {written:,} in Redis + {lost_verdicts:,} dropped = "
                  f"{written + lost_verdicts:,} of {scored_all:,} scored")  # fmt: skip
    result.expect(
        lost_kpm > 0 or result.forwarded == result.scored,
        f"the KPM stream is complete ({result.forwarded:,} forwarded of {result.scored:,})",
    )


# --- models ------------------------------------------------------------------------------------------------------


async def model_late(ctx: Context, result: RowResult) -> None:
    redis, _, xapp, _, _ = await sim_rig(ctx, 8, "realtime", P_SLOW, model_shadow_periods=0)
    await until("the xApp to score", await scored_at_least(xapp, 8), 60.0)
    pid = xapp.child.pid
    version = "faults-1000ms-v2"
    put = await xapp.http.request("PUT", "/A1-P/v2/policytypes/20100/policies/ranomaly-model",
                                  json={"enabled": True, "model_version": version})  # fmt: skip
    result.expect(put.status_code in (200, 201, 202), f"the model policy naming {version} is taken ({put.status_code})")

    async def refused() -> bool:
        health = await xapp.http.health()
        return version in str(health.get("model_problem")) and not health["ready"]

    await until(f"the xApp to say it cannot load {version}", refused, 30.0)
    health = await xapp.http.health()
    result.figures["problem_before"] = str(health["model_problem"])[:100]
    ctx.status(f"publishing {version}")
    folder = ctx.model(P_SLOW, version)
    from xapp.datalayer.redis import RedisDataLayer

    layer = RedisDataLayer(redis.url)
    await layer.start()
    manifest, onnx = (folder / MANIFEST_FILE).read_bytes(), (folder / MODEL_FILE).read_bytes()
    key = load_signing_key(signing_keys(ctx.folder.parent)[0])
    signature = sign(key, version, manifest, artifact_bytes_digest(onnx), 1)  # promoted after the seed: counter 1
    await layer.publish_model(version, manifest, onnx, signature=signature)
    await layer.close()

    async def swapped() -> bool:
        return (await xapp.http.health()).get("model_version") == version

    began = time.monotonic()
    with contextlib.suppress(RowFailed):
        await until(f"the xApp to score with {version}", swapped, 60.0)
    health = await xapp.http.health()
    result.figures["swapped_after_s"] = round(time.monotonic() - began, 1)
    result.expect(
        health.get("model_version") == version and xapp.child.pid == pid and xapp.child.exit_code() is None,
        f"once published, {version} scores without a restart (scoring {health.get('model_version')})",
    )
    result.expect(bool(health.get("ready")), f"ready again ({health.get('problems')})")


async def corrupt_seed(ctx: Context, result: RowResult) -> None:
    folder = ctx.folder / "broken-model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).write_text("{not json")
    (folder / MODEL_FILE).write_bytes(b"\x00" * 64)
    xapp = ctx.rig.xapp(folder, free_port(), None, period_ms=P_SLOW)
    await xapp.start()

    async def says_why() -> bool:
        return "seed" in json.dumps((await xapp.http.health()).get("problems"))

    with contextlib.suppress(RowFailed):
        await until("the xApp to name the broken seed", says_why, 30.0)
    await asyncio.sleep(2.0)  # it reads the seed again at every poll: it must stay up
    health = await xapp.http.health()
    ready = await xapp.http.request("GET", "/readyz")
    types = await xapp.http.request("GET", "/A1-P/v2/policytypes")
    result.figures["problems"] = json.dumps(health.get("problems"))[:120]
    result.expect(xapp.child.exit_code() is None, "the xApp stays up with a corrupt --model folder")
    result.expect(
        ready.status_code == 503 and "seed" in json.dumps(health.get("problems")),
        f"unready, saying why ({ready.status_code})",
    )
    result.expect(types.status_code == 200, f"A1 is served ({types.status_code})")


# --- rApp ----------------------------------------------------------------------------------------------------------


def _processes_naming(marker: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if marker in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
    return found


async def jobs(ctx: Context, result: RowResult) -> None:
    redis, _, xapp, rapp, _ = await sim_rig(ctx, 24, "accelerated", P_SLOW, 600, rapp=True)
    assert rapp is not None
    ctx.status("waiting for history to train on")

    async def history() -> bool:
        return history_rows(ctx.folder / "history")[1] >= 24 * 600

    await until("the rApp to store the simulated history", history, 120.0, poll_s=1.0)
    ctx.status("200 training requests at once")
    async with httpx.AsyncClient(base_url=rapp.http.base, timeout=60, limits=httpx.Limits(max_connections=200),
                                 headers=rapp.http.headers()) as c:  # fmt: skip
        answers = await asyncio.gather(*(c.post("/api/v1/jobs/training", json={"reason": f"faults {i} " + "x" * 150})
                                         for i in range(200)), return_exceptions=True)  # fmt: skip
        long_reason = await c.post("/api/v1/jobs/training", json={"reason": "y" * 10_000})
        listing = await c.get("/api/v1/jobs")
    codes = [a.status_code if isinstance(a, httpx.Response) else type(a).__name__ for a in answers]
    accepted = codes.count(202)
    refused = [a for a in answers if isinstance(a, httpx.Response) and a.status_code == 429]
    retry = all(a.headers.get("Retry-After") for a in refused)
    result.sent = 200
    result.figures |= {
        "accepted": accepted,
        "refused_429": len(refused),
        "other": len(codes) - accepted - len(refused),
        "long_reason_status": long_reason.status_code,
        "listing_bytes": len(listing.content),
    }
    result.expect(accepted <= 4 and len(refused) == 200 - accepted and retry,
                  f"at most 1 running + 3 waiting are taken, the rest refused with 429 and Retry-After "
                  f"({accepted} taken, {len(refused)} refused)")  # fmt: skip
    result.expect(long_reason.status_code in (400, 413, 422), f"a 10,000-character reason is refused "
                  f"({long_reason.status_code})")  # fmt: skip
    result.expect(len(listing.content) < 64_000, f"the job listing stays small ({len(listing.content):,} bytes)")
    work = str(ctx.folder / "work")
    ctx.status("waiting for a training child to run")
    with contextlib.suppress(RowFailed):
        await until("a training child", lambda: _true(bool(_processes_naming(work))), 60.0)
    children = _processes_naming(work)
    result.figures["training_children_at_sigterm"] = len(children)
    code = await rapp.child.stop(signal.SIGTERM)
    await asyncio.sleep(0.5)
    left = _processes_naming(work)
    result.figures["rapp_exit"] = code
    result.expect(bool(children) and not left, f"SIGTERM to the rApp leaves no training child ({len(children)} "
                  f"running before, {len(left)} after)")  # fmt: skip
    for pid in left:  # what it left is not left running by this run
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    ctx.status("restarting the rApp: are the jobs still there?")
    again = ctx.rig.rapp(redis.url, xapp.http.port)
    await again.start()
    kept = (await again.http.request("GET", "/api/v1/jobs", params={"limit": 100})).json()
    listed = kept.get("jobs", kept) if isinstance(kept, dict) else kept
    result.figures["jobs_after_restart"] = len(listed)
    result.expect(len(listed) == accepted, f"the jobs outlive a restart ({len(listed)} of {accepted})")
    result.scored, result.dropped = accepted, {"429": len(refused)} if refused else {}


async def _true(value: bool) -> bool:
    return value


async def near_rt_restart(ctx: Context, result: RowResult) -> None:
    redis = ctx.redis()
    a1_port = free_port()
    xapp = ctx.rig.xapp(None, free_port(), None, port=a1_port)
    await xapp.start()
    rapp = ctx.rig.rapp(redis.url, a1_port, a1_sync_interval_s=1.0)
    await rapp.start()
    document = {"name": "faults-extra", "description": "an operator's type", "policy_type_id": 20101,
                "create_schema": {"type": "object", "properties": {"enabled": {"type": "boolean"}}}}  # fmt: skip
    made = await xapp.http.request("PUT", "/A1-P/v2/policytypes/20101", json=document)
    result.expect(made.status_code in (200, 201), f"type 20101 created on the Near-RT side ({made.status_code})")
    puts = []
    for policy_id, type_id, body in (("p1", "20100", {"enabled": True, "scope": {"cells": ["c1"]}}),
                                     ("p2", "20101", {"enabled": True})):  # fmt: skip
        answer = await rapp.http.request("PUT", "/a1-policy/v2/policies", json={
            "ric_id": "ric-1", "policy_id": policy_id, "policytype_id": type_id, "policy_data": body})  # fmt: skip
        puts.append(answer.status_code)
    result.sent = 2
    result.expect(all(code in (200, 201) for code in puts), f"two policies put through the rApp ({puts})")
    ctx.status("the Near-RT side restarts empty")
    await xapp.child.stop()
    again = ctx.rig.xapp(None, free_port(), None, port=a1_port)
    await again.start()
    began = time.monotonic()

    async def restored() -> bool:
        got = [await again.http.request("GET", f"/A1-P/v2/policytypes/{t}/policies") for t in (20100, 20101)]
        held = [set(g.json()) if g.status_code == 200 else set() for g in got]
        return "p1" in held[0] and "p2" in held[1]

    with contextlib.suppress(RowFailed):
        await until("the rApp to restore type 20101 and both policies", restored, 60.0, poll_s=0.5)
    metrics = await rapp.http.scrape()
    health = await rapp.http.health()
    restored_types = int(metrics.value("ranomaly_rapp_policy_types_restored_total"))
    repushed = int(metrics.value("ranomaly_rapp_policies_repushed_total"))
    result.stored = repushed
    result.figures |= {"types_restored": restored_types, "policies_repushed": repushed,
                       "restored_after_s": round(time.monotonic() - began, 1),
                       "a1_sync_ok": metrics.value("ranomaly_rapp_a1_sync_ok")}  # fmt: skip
    result.expect(await restored() and restored_types >= 1 and repushed >= 2,
                  f"the lost type is restored before its policies are pushed again ({restored_types} types, "
                  f"{repushed} policies)")  # fmt: skip
    result.expect(not health.get("a1_sync", {}).get("failing"), f"the rApp's A1 sync is healthy again "
                  f"({health.get('a1_sync')})")  # fmt: skip


# --- A1 under load, streams, error bodies -----------------------------------------------------------------------


def _percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    array = np.asarray(values)
    return float(np.percentile(array, 50)), float(np.percentile(array, 99))


async def a1_storm(ctx: Context, result: RowResult) -> None:
    """Three phases of the same length: quiet; 200 PUTs kept in flight by another process; the control, the
    same load aimed at an A1 server in a process of its own, so that what the load process alone costs this
    machine is told apart from what the xApp's A1 work costs its scoring."""
    cells_n, window_s, concurrency = 200, 8.0, 200
    _, _, xapp, _, streams = await sim_rig(ctx, cells_n, "realtime", P_FAST)
    await until("the xApp to score", await scored_at_least(xapp, 20 * cells_n), 60.0)
    await streams.read()
    before = await xapp.http.scrape()
    spans: dict[str, tuple[int, int]] = {}
    puts: list[float] = []
    errors: dict[str, int] = {}
    key = read_api_key(xapp.http.key_file)  # the control server takes the xApp's key too
    async with a1_elsewhere(key) as control_port:
        for phase, port in (("quiet", None), ("a1", xapp.http.port), ("control", control_port)):
            ctx.status(f"{window_s:g} s: {phase}" + ("" if port is None else f", {concurrency} A1 PUTs in flight"))
            began = int(time.time() * 1000)
            if port is None:
                await asyncio.sleep(window_s)
            else:
                load = A1Load(port, key, concurrency, window_s, 1)
                await load.start()
                latencies, kinds, _ = await load.result()
                if phase == "a1":
                    puts, errors = latencies, kinds
            spans[phase] = (began, int(time.time() * 1000))
            await streams.read()
    await asyncio.sleep(1.0)
    await streams.read()
    after = await xapp.http.scrape()
    count_xapp(result, before, after)
    result.sent = received(after, before)
    p99 = {}
    for phase, (began, ended) in spans.items():
        observed = [lat for at, lat in streams.verdict_latencies_ms if began <= at < ended]
        p50, p99[phase] = _percentiles(observed)
        result.figures[f"verdict_latency_ms_{phase}"] = f"p50 {p50:.1f} p99 {p99[phase]:.1f} ({len(observed):,} rows)"
    a1_p99 = float(np.percentile(puts, 99)) * 1000 if puts else float("nan")
    result.figures |= {"a1_puts": len(puts), "a1_p99_ms": round(a1_p99, 1), "a1_errors": errors or 0}
    result.expect(bool(puts) and not errors, f"every A1 PUT answered 202 ({len(puts):,} PUTs, errors {errors or 0})")
    moved, machine = p99["a1"] - p99["quiet"], p99["control"] - p99["quiet"]
    result.expect(
        np.isfinite(moved) and np.isfinite(machine) and moved - max(machine, 0.0) <= 5.0,
        f"A1 work moved verdict latency p99 by at most 5 ms: {p99['quiet']:.1f} -> {p99['a1']:.1f} ms under the "
        f"PUTs, {p99['control']:.1f} ms under the same load aimed elsewhere (raw latencies)",
    )
    expect_common(result, xapp)


async def stream_bytes(ctx: Context, result: RowResult) -> None:
    budget = 256 * 1024
    _, _, xapp, rapp, streams = await sim_rig(
        ctx, 200, "realtime", P_FAST, rapp=True, verdict_stream_bytes=budget, kpm_stream_bytes=budget,
        incident_stream_bytes=budget, stream_sample_s=1.0)  # fmt: skip
    assert rapp is not None
    ctx.status("filling the streams past their byte budget")
    await until("the xApp to score", await scored_at_least(xapp, 200 * 150), 90.0, poll_s=1.0)
    await asyncio.sleep(2.0)
    memory = await streams.memory()
    gauges = (await xapp.http.scrape()).by("ranomaly_xapp_stream_memory_bytes", "stream")
    result.figures |= {"redis_memory_usage": memory, "budget_bytes": budget, "gauges": {k: int(v) for k, v in
                                                                                          gauges.items()}}  # fmt: skip
    result.expect(bool(gauges), f"each stream's memory is in /metrics (ranomaly_xapp_stream_memory_bytes: {gauges})")
    over = {k: v for k, v in memory.items() if v > budget * 1.25}
    result.expect(not over, f"no stream holds more than its byte budget of {budget:,} (+25 %): {memory}")
    ctx.status("error bodies")
    secret = [str(ctx.folder.parent), str(Path.cwd()), "/tmp/", "site-packages", '.py"']
    probes: list[tuple[App, str, str, Any]] = [
        (xapp, "PUT", "/A1-P/v2/policytypes/20100/policies/x", "{"),
        (xapp, "GET", "/A1-P/v2/policytypes/not-a-number", None),
        (xapp, "PUT", "/A1-P/v2/policytypes/20100/policies/ranomaly-model", {"enabled": True, "model_version": "../x"}),
        (rapp, "GET", "/api/v1/jobs/..%2F..%2Fetc%2Fpasswd", None),
        (rapp, "GET", "/api/v1/jobs/nope/log", None),
        (rapp, "POST", "/api/v1/models/..%2Fetc/rollback", None),
        (rapp, "PUT", "/a1-policy/v2/policies", "{"),
        (rapp, "GET", "/api/v1/reports/incidents/nope", None),
        (rapp, "GET", "/healthz", None),
    ]
    leaks = []
    for app, method, path, body in probes:
        kwargs = {"content": body} if isinstance(body, str) else {"json": body} if body is not None else {}
        answer = await app.http.request(method, path, **kwargs)
        if any(s in answer.text for s in secret):
            leaks.append(f"{method} {path} -> {answer.status_code}: {answer.text[:160]}")
    result.sent = len(probes)
    result.figures["error_bodies_checked"] = len(probes)
    result.expect(not leaks, "error bodies and health name no server path" + (f": {leaks}" if leaks else ""))


# name -> (the fault, the row)
ROWS: dict[str, tuple[str, Callable[[Context, RowResult], Awaitable[None]]]] = {
    "huge_start": ("collection starts near 2^63 and 2^64 ms between normal rows", huge_start),
    "future_start": ("one collection start 10 years ahead, then 9 normal periods", future_start),
    "cell_flood": ("50,000 new cells in one indication, 10,000 from an unknown node", cell_flood),
    "far_gap": ("a node jumps 10 years ahead and insists (a gap of 315 million periods)", far_gap),
    "bad_values": ("a negative counter, an empty cell id, a cell reported by the wrong node", bad_values),
    "replay": ("the accelerated stream ends twice; the xApp resubscribes each time", replay),
    "model_late": ("the model policy names a version before it is published, then it is", model_late),
    "corrupt_seed": ("the xApp starts with a corrupt --model folder", corrupt_seed),
    "jobs": ("200 training requests at once, a 10,000-character reason, SIGTERM to the rApp mid-training", jobs),
    "near_rt_restart": ("the Near-RT side (the xApp) restarts empty", near_rt_restart),
    "a1_storm": ("200 A1 PUTs in flight while 200 cells are scored every 100 ms, beside a control", a1_storm),
    "stream_bytes": ("streams past a 256 KiB byte budget; error bodies probed for server paths", stream_bytes),
    "redis_outage": ("redis-server frozen (SIGSTOP) for 5 s under 2,000 cell-reports/s", redis_outage),
    "e2_restart": ("the E2 node (simulator) is killed and restarted", e2_restart),
}
