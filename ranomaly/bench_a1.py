"""`ranomaly bench a1`: how much 200 concurrent A1 PUTs move the xApp's verdict latency.

In one process, as the xApp runs them: the engine with the given (shipped) detector on the scoring loop,
fed 8-cell indications at a steady rate, with its policy view following the data layer's change stream
every 0.25 s; the A1 HTTP server on its own thread (`xapp.httpthread`), writing to the same in-memory data
layer. Phases of the same length alternate in the same run, `rounds` of each: quiet, then with a separate
process keeping `concurrency` A1 PUTs in flight over plain HTTP/1.1 (each a real change of its own
instance, so the engine re-resolves its cells' policies; each with the API key, audited as the xApp does).
Latency is each indication's receipt to its verdicts written; the percentiles come from the raw
observations of each kind of phase, pooled. A third
kind of phase is the control: the same load aimed at the same A1 server in another process, so what it
moves is what the load process alone costs the machine (on a busy 2-core machine, several ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing
import secrets
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import FastAPI

from models.artifact import Artifact
from ranomaly.bench_xapp import CELLS_PER_NODE, _Latencies, _messages, hot_path_engine, percentiles
from ranomaly.logs import configure_logging
from ranomaly_contracts.auth.apikey import ApiKey
from ranomaly_contracts.auth.audit import AuditMiddleware
from ranomaly_contracts.auth.guard import API_KEY_HEADER, Guard
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from xapp.datalayer.policies import PolicyData
from xapp.enforcement import StorePolicies
from xapp.engine import Engine
from xapp.httpthread import HttpThread
from xapp.policy.follow import PolicyFollower
from xapp.policy.handler import A1Handler
from xapp.policy.http import a1_router
from xapp.policy.store import PolicyStore
from xapp.policy.types import POLICY_TYPE_ID

_TICK_S = 0.25  # the xApp's duty tick
_BURST_S = 0.01  # indications are fed in bursts this far apart


async def _put(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes, key: str) -> int:
    """One PUT on a kept-alive connection (plain HTTP/1.1, no client library: the load costs little); the status."""
    writer.write(f"PUT {path} HTTP/1.1\r\nHost: a1\r\nContent-Type: application/json\r\n{API_KEY_HEADER}: {key}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


def _load_child(port: int, key: str, concurrency: int, seconds: float, nodes: int, started: Any, out: Any) -> None:
    """Keep `concurrency` PUTs in flight for `seconds`, one connection each; put (latencies in s, errors by kind,
    statuses seen)."""

    async def worker(
        n: int, deadline: float, latencies: list[float], errors: Counter[str], statuses: Counter[int]
    ) -> None:
        path = f"/A1-P/v2/policytypes/{POLICY_TYPE_ID}/policies/bench-{n}"
        value, connection = 4.0, None
        while time.monotonic() < deadline:
            value = 4.0 if value >= 6.0 else value + 0.5  # every PUT changes the instance
            body = json.dumps({"enabled": True, "scope": {"nodes": [f"n{n % nodes}"]},
                               "threshold": {"mode": "sigma", "value": value}}).encode()  # fmt: skip
            began = time.perf_counter()
            try:
                connection = connection or await asyncio.open_connection("127.0.0.1", port)
                status = await _put(*connection, path, body, key)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors[type(exc).__name__] += 1
                connection = None
                continue
            latencies.append(time.perf_counter() - began)
            statuses[status] += 1
            if status != 202:
                errors[f"status {status}"] += 1
        if connection is not None:
            connection[1].close()

    async def run() -> tuple[list[float], dict[str, int], dict[int, int]]:
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        statuses: Counter[int] = Counter()
        deadline = time.monotonic() + seconds
        started.set()
        await asyncio.gather(*(worker(n, deadline, latencies, errors, statuses) for n in range(concurrency)))
        return latencies, dict(errors), dict(statuses)

    out.put(asyncio.run(run()))


async def _feed(engine: Engine, messages: list[pb.IndicationBatch], seconds: float) -> int:
    """Feed messages in bursts every _BURST_S at the rate that spreads them over `seconds`; how many were fed."""
    per_burst = max(1, round(len(messages) * _BURST_S / seconds))
    began = time.monotonic()
    fed = 0
    while fed < len(messages):
        for message in messages[fed : fed + per_burst]:
            engine.on_batch(message)
        fed += per_burst
        due = began + fed / per_burst * _BURST_S
        await asyncio.sleep(max(0.0, due - time.monotonic()))
    return min(fed, len(messages))


async def _duties(engine: Engine, follower: PolicyFollower, stop: asyncio.Event) -> None:
    """What the xApp's scoring loop does every tick besides scoring: policy changes, then the engine's tick."""
    while not stop.is_set():
        await asyncio.sleep(_TICK_S)
        await follower.poll()
        engine.tick()


async def _phase(engine: Engine, messages: list[pb.IndicationBatch], seconds: float) -> tuple[list[float], int, float]:
    """Feed one phase: the raw latencies (s), cell-reports scored, seconds taken."""
    latencies = _Latencies()
    engine.metrics.latency = latencies  # type: ignore[assignment]
    gc.collect()
    rows0, began = engine.scored_rows, time.perf_counter()
    await _feed(engine, messages, seconds)
    engine.flush()
    return latencies.values, engine.scored_rows - rows0, time.perf_counter() - began


def _figures(phases: list[tuple[list[float], int, float]]) -> dict[str, Any]:
    """One kind of phase, its rounds pooled."""
    latencies = [value for values, _, _ in phases for value in values]
    rows, seconds = sum(rows for _, rows, _ in phases), sum(took for _, _, took in phases)
    return {"indications": len(latencies), "cell_reports": rows, "seconds": seconds,
            "cell_reports_per_s": rows / seconds, "verdict_latency": percentiles(latencies)}  # fmt: skip


def _server_child(key: str, out: Any) -> None:
    """The A1 server of the control phases, in a process of its own; put its port, then serve until killed."""
    configure_logging("WARNING")

    async def serve() -> None:
        from xapp.datalayer.memory import MemoryDataLayer

        layer = MemoryDataLayer()
        view, store = PolicyStore(layer), PolicyStore(layer)
        await view.load()
        server = HttpThread(lambda: _a1_app(store, view, layer, key), store, layer, "127.0.0.1", 0)
        server.start()
        out.put(await server.listening())
        await asyncio.Event().wait()

    asyncio.run(serve())


def _a1_app(store: PolicyStore, view: PolicyStore, audit: PolicyData, key: str) -> FastAPI:
    """A1-P as the xApp serves it: the API key required, writes audited."""
    app = FastAPI()
    app.add_middleware(AuditMiddleware, app_name="xapp", sink=audit)
    app.include_router(a1_router(A1Handler(store, enforcement=view), Guard(None, ApiKey(key))))
    return app


@contextlib.asynccontextmanager
async def a1_elsewhere(key: str) -> AsyncIterator[int]:
    """An A1 server like the xApp's in a process of its own, the control phases' target: its port."""
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    child = ctx.Process(target=_server_child, args=(key, ports), daemon=True)
    child.start()
    try:
        yield await asyncio.to_thread(ports.get, True, 120)
    finally:
        child.kill()


class A1Load:
    """A process keeping `concurrency` A1 PUTs in flight for `seconds` (one loaded or control phase)."""

    def __init__(self, port: int, key: str, concurrency: int, seconds: float, nodes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._started, self._out = ctx.Event(), ctx.Queue()
        args = (port, key, concurrency, seconds, nodes, self._started, self._out)
        self._child = ctx.Process(target=_load_child, args=args)
        self._seconds = seconds

    async def start(self) -> None:
        """Start it and wait until its requests go out."""
        self._child.start()
        while not self._started.is_set():
            if not self._child.is_alive():
                raise RuntimeError(f"the A1 load process ended before it started (exit {self._child.exitcode})")
            await asyncio.sleep(0.05)

    async def result(self) -> tuple[list[float], dict[str, int], dict[int, int]]:
        """(PUT latencies in s, errors by kind, statuses) once it ends."""
        result = await asyncio.to_thread(self._out.get, True, self._seconds + 120)
        self._child.join(30)
        return result


async def _bench(artifact: Artifact, cells: int, rate: float, seconds: float, concurrency: int,
                 rounds: int) -> dict[str, Any]:  # fmt: skip
    per_phase = max(2, round(rate * seconds / cells))  # periods
    messages = _messages(artifact, cells, 1 + 3 * rounds * per_phase, per_message=1)
    per_period = len(messages) // (1 + 3 * rounds * per_phase)
    engine, layer = await hot_path_engine(artifact, 1024, 2.0)
    engine.intake.cell_filter.nodes.update(f"n{n}" for n in range(cells // CELLS_PER_NODE))
    assert isinstance(engine.policies, StorePolicies)
    view = engine.policies.store
    follower = PolicyFollower(view, layer)
    a1_store = PolicyStore(layer)
    key = secrets.token_urlsafe(32)  # the servers' API key, as the xApp generates its own
    server = HttpThread(lambda: _a1_app(a1_store, view, layer, key), a1_store, layer, "127.0.0.1", 0)
    server.start()
    stop = asyncio.Event()
    duties = asyncio.create_task(_duties(engine, follower, stop))
    phases: dict[str, list[tuple[list[float], int, float]]] = {"quiet": [], "a1_load": [], "control": []}
    puts: list[float] = []
    errors: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    try:
        async with a1_elsewhere(key) as control_port:
            port = await server.listening()
            for message in messages[:per_period]:  # the first period adds every cell
                engine.on_batch(message)
            engine.flush()
            for phase in range(3 * rounds):  # quiet, loaded, control, quiet, ...
                first = per_period * (1 + phase * per_phase)
                chunk = messages[first : first + per_period * per_phase]
                kind = ("quiet", "a1_load", "control")[phase % 3]
                if kind == "quiet":
                    phases[kind].append(await _phase(engine, chunk, seconds))
                    continue
                target = port if kind == "a1_load" else control_port
                load = A1Load(target, key, concurrency, seconds, cells // CELLS_PER_NODE)
                await load.start()
                phases[kind].append(await _phase(engine, chunk, seconds))
                latencies, kinds, seen = await load.result()
                if kind == "a1_load":
                    puts += latencies
                    errors.update(kinds)
                    statuses.update(seen)
    finally:
        stop.set()
        await duties
        server.stop()
        await server.join()
        await layer.close()
    figures = {kind: _figures(observed) for kind, observed in phases.items()}
    quiet_p99 = figures["quiet"]["verdict_latency"]["p99_ms"]
    return {
        "model": artifact.manifest.version, "cells": cells, "target_cell_reports_per_s": rate,
        "phase_seconds": seconds, "rounds": rounds, "gil_switch_interval_ms": sys.getswitchinterval() * 1000,
        **figures, "p99_moved_ms": figures["a1_load"]["verdict_latency"]["p99_ms"] - quiet_p99,
        "control_p99_moved_ms": figures["control"]["verdict_latency"]["p99_ms"] - quiet_p99,
        "a1_puts": {"concurrency": concurrency, "answered": len(puts), "errors": sum(errors.values()),
                    "errors_by_kind": dict(errors), "statuses": {str(code): n for code, n in sorted(statuses.items())},
                    "latency": percentiles(puts) if puts else {}, "per_s": len(puts) / (seconds * rounds)},
        "changes_applied_by_engine": follower.applied, "instances_in_engine_view": len(view.instances(POLICY_TYPE_ID)),
    }  # fmt: skip


def run_a1_bench(artifact: Artifact, cells: int = 2_000, rate: float = 20_000.0, seconds: float = 10.0,
                 concurrency: int = 200, rounds: int = 2) -> dict[str, Any]:  # fmt: skip
    """Quiet, loaded and control phases, alternating, `rounds` of each (see the module docstring)."""
    figures = asyncio.run(_bench(artifact, cells, rate, seconds, concurrency, rounds))
    figures["p99_target_ms"] = 5.0
    figures["holds"] = bool(np.isfinite(figures["p99_moved_ms"]) and figures["p99_moved_ms"] <= 5.0)
    return figures
