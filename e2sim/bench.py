"""`ranomaly bench sim`: how fast the simulator generates and streams, each against a baseline.

- generation in process: cell-reports/s computing blocks of many periods, against one period a call;
- encoding: cell-reports/s turned into serialized stream messages;
- gRPC on loopback: the server in its own process (accelerated), this process subscribing and
  counting; 64 indications per message against one per message;
- real-time pacing: the server in its own process at wall-clock periods, how late each indication
  arrives after its period ended (its scheduled send time), and how many were lost.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import grpc

from e2sim.encoding import IndicationEncoder, plan_subscription
from e2sim.world import World, WorldConfig
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2.v1 import e2_pb2_grpc as pb_grpc


def _rate(world: World, first: int, periods: int, per_call: int, period_ms: int, repeats: int) -> dict[str, float]:
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        for offset in range(0, periods, per_call):
            world.block(first + offset, min(per_call, periods - offset), period_ms)
        seconds.append(time.perf_counter() - began)
    reports = periods * len(world.cell_ids)
    return {
        "cell_reports_per_s": reports / statistics.median(seconds),
        "seconds_median": statistics.median(seconds),
    }


def bench_generation(cells: int, periods: int, period_ms: int, repeats: int = 3) -> dict[str, Any]:
    """In-process generation, chunked (many periods a call) against one period a call."""
    world = World(WorldConfig(n_cells=cells))
    first = world.stream_start(period_ms, 0, realtime=False).first_period
    world.block(first, 1, period_ms)  # warm caches of the anomaly schedule
    chunked = _rate(world, first, periods, periods, period_ms, repeats)
    single = _rate(world, first, periods, 1, period_ms, repeats)
    return {
        "cells": cells,
        "periods": periods,
        "period_ms": period_ms,
        "chunked": chunked,
        "one_period_per_call": single,
        "speedup": chunked["cell_reports_per_s"] / single["cell_reports_per_s"],
    }


def bench_encoding(cells: int, periods: int, period_ms: int, per_message: int) -> dict[str, Any]:
    """Blocks turned into serialized SubscriptionMessages (generation excluded)."""
    world = World(WorldConfig(n_cells=cells))
    request = pb.SubscriptionRequest(reporting_period_ms=period_ms, max_indications_per_message=per_message)
    plan = plan_subscription(world, request, per_message)
    first = world.stream_start(period_ms, 0, realtime=False).first_period
    block = world.block(first, periods, period_ms)
    encoder = IndicationEncoder(plan, world, first)
    began = time.perf_counter()
    size = sum(len(m.SerializeToString()) for m in encoder.messages(block))
    seconds = time.perf_counter() - began
    return {
        "cells": cells,
        "periods": periods,
        "cell_reports_per_s": periods * cells / seconds,
        "bytes_per_cell_report": size / (periods * cells),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _consume(port: int, period_ms: int, per_message: int) -> dict[str, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = pb_grpc.E2NodeStub(channel)
        request = pb.SubscriptionRequest(
            subscriber_id="bench", reporting_period_ms=period_ms, max_indications_per_message=per_message
        )
        reports = messages = indications = 0
        began = 0.0
        async for message in stub.Subscribe(request):
            if message.HasField("accepted"):
                began = time.perf_counter()
                continue
            messages += 1
            for indication in message.batch.indications:
                indications += 1
                reports += len(indication.cell_ids)
        seconds = time.perf_counter() - began
    return {
        "cell_reports_per_s": reports / seconds,
        "messages_per_s": messages / seconds,
        "indications_per_s": indications / seconds,
        "cell_reports": reports,
        "seconds": seconds,
    }


def _serve(pace: str, cells: int, periods: int) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    command = [
        sys.executable, "-m", "ranomaly", "--log-level", "WARNING", "sim", "serve", "--pace", pace,
        "--cells", str(cells), "--periods", str(periods), "--port", str(port),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL), port


def bench_grpc(cells: int, periods: int, period_ms: int, per_message: int) -> dict[str, float]:
    """Stream periods of an accelerated simulator in another process over loopback; count at the client."""
    server, port = _serve("accelerated", cells, periods)
    try:
        return asyncio.run(_consume(port, period_ms, per_message))
    finally:
        server.terminate()
        server.wait(10)


async def _lateness(port: int, request: pb.SubscriptionRequest) -> tuple[list[float], int, int]:
    late_ms: list[float] = []
    next_sequence: dict[str, int] = {}
    lost = reports = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        async for message in pb_grpc.E2NodeStub(channel).Subscribe(request):
            arrived_ms = time.time() * 1000.0
            for indication in message.batch.indications:
                header = indication.header
                late_ms.append(arrived_ms - (header.collection_start_ms + header.granularity_period_ms))
                lost += header.sequence_number - next_sequence.get(header.node_id, header.sequence_number)
                next_sequence[header.node_id] = header.sequence_number + 1
                reports += len(indication.cell_ids)
    return late_ms, lost, reports


def bench_realtime(
    cells: int, period_ms: int, periods: int, max_indications_per_message: int = 0, max_cells_per_message: int = 0
) -> dict[str, float]:
    """Wall-clock pacing: lateness of each indication after its period ended, at the client, which asks for
    messages of the given size (0: the simulator's default)."""
    server, port = _serve("realtime", cells, periods)
    request = pb.SubscriptionRequest(
        subscriber_id="bench-realtime", reporting_period_ms=period_ms,
        max_indications_per_message=max_indications_per_message, max_cells_per_message=max_cells_per_message,
    )  # fmt: skip
    try:
        late_ms, lost, reports = asyncio.run(_lateness(port, request))
    finally:
        server.terminate()
        server.wait(10)
    ordered = sorted(late_ms)
    return {
        "cells": cells,
        "period_ms": period_ms,
        "cell_reports_per_s": cells * 1000.0 / period_ms,
        "cell_reports": reports,
        "late_ms_p50": ordered[len(ordered) // 2],
        "late_ms_p99": ordered[int(len(ordered) * 0.99)],
        "late_ms_max": ordered[-1],
        "indications_lost": lost,
        "max_indications_per_message": max_indications_per_message,
        "max_cells_per_message": max_cells_per_message,
    }


def run_sim_bench(cells: int, grpc_cells: int, grpc_periods: int) -> dict[str, Any]:
    """All simulator figures, as one JSON-ready dict."""
    batched = bench_grpc(grpc_cells, grpc_periods, 60_000, 64)
    unbatched = bench_grpc(grpc_cells, max(grpc_periods // 8, 1), 60_000, 1)
    return {
        "realtime": bench_realtime(cells, 250, 40),
        "generation_small": bench_generation(60, 1440, 60_000),
        "generation_large": bench_generation(cells, 24, 250),
        "encoding": bench_encoding(cells, 8, 250, 64),
        "grpc": {
            "cells": grpc_cells,
            "batched_64": batched,
            "unbatched_1": unbatched,
            "speedup": batched["cell_reports_per_s"] / unbatched["cell_reports_per_s"],
        },
    }
