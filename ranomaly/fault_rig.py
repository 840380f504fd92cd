"""The real processes `ranomaly faults` runs its rows against, and how it reads what they did.

Each part is a process of its own: redis-server (ranomaly.redis_process), `ranomaly xapp`, `ranomaly rapp` and
`ranomaly sim serve`, each in its own process group with its output in a log file of the run's folder. A
hostile E2 node (ScriptedNode) is a gRPC endpoint in the faults process itself: it sends exactly what a row
scripts. Counts are read from each app's /metrics, the Redis streams and the rApp's history files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

import grpc
import httpx
import numpy as np
import pyarrow.parquet as pq
from prometheus_client.parser import text_string_to_metric_families

from models.artifact import write_artifact
from models.signing import SIGNATURE_FILE, ensure_key_pair, load_signing_key, sign_folder
from models.trivial import trivial_artifact
from ranomaly.redis_process import free_port
from ranomaly_contracts.auth.apikey import read_api_key
from ranomaly_contracts.auth.guard import API_KEY_HEADER
from ranomaly_contracts.e2.v1 import e2_pb2 as pb
from ranomaly_contracts.e2.v1 import e2_pb2_grpc as pb_grpc
from ranomaly_contracts.sdl import FIELD_DATA, decode_kpm, decode_verdicts, sdl_keys

# Four counters of the simulator's catalogue (a negative value is out of range for each).
MEASUREMENTS = ("RRU.PrbUsedDl", "RRU.PrbUsedUl", "RRC.ConnMean", "MM.HoExeInterReq")
START_S = 60.0  # for a process to answer
STOP_S = 20.0  # for a process to stop after SIGTERM before its group is killed
SIGNING_FOLDER = "model-signing"  # in the work folder: the rig's model signing key pair


class RowFailed(Exception):
    """A row could not be run to its end (a part did not start, a wait ran out): the row does not hold."""


def signing_keys(work: Path) -> tuple[Path, Path]:
    """The rig's model signing key pair (private, public), made on first use in the work folder: its models and
    rApps sign with it, its xApps trust it."""
    return ensure_key_pair(work / SIGNING_FOLDER)


def model_folder(root: Path, period_ms: int, version: str) -> Path:
    """A trivial detector (xapp tests' model: cheap, scores jumps) for MEASUREMENTS at this period, signed with
    the rig's key (promotion counter 0, as a seed) that the folder above `root` holds."""
    folder = root / f"{version}"
    if not (folder / "manifest.json").exists():
        fields, onnx = trivial_artifact(MEASUREMENTS, period_ms / 1000, version=version, warmup_periods=2)
        write_artifact(folder, onnx, fields)
    if not (folder / SIGNATURE_FILE).exists():
        sign_folder(load_signing_key(signing_keys(root.parent)[0]), folder)
    return folder


async def until(what: str, condition: Callable[[], Awaitable[bool]], timeout_s: float, poll_s: float = 0.2) -> None:
    """Wait for an async condition; RowFailed naming what was awaited after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise RowFailed(f"waited {timeout_s:g} s in vain for {what}")
        await asyncio.sleep(poll_s)


class Child:
    """A `python -m ranomaly ...` process in its own process group, its output in a log file."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, list(args), env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (nice'd: the run shares the machine)."""
        command = ["nice", "-n", "5", sys.executable, "-m", "ranomaly", "--log-level", "WARNING", *self.args]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env=os.environ | self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def exit_code(self) -> int | None:
        """None while it runs."""
        return None if self.process is None else self.process.poll()

    def send_signal(self, signum: signal.Signals) -> None:
        """Send a signal to the process (not its group)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    async def stop(self, signum: signal.Signals = signal.SIGTERM) -> int | None:
        """Stop it and its group (SIGKILL after STOP_S); its exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signum)
            deadline = time.monotonic() + STOP_S
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait()

    def tail(self, lines: int = 8) -> list[str]:
        """The last lines of its log."""
        try:
            return self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []


class Scrape:
    """One /metrics answer: sample name -> [(labels, value)]."""

    def __init__(self, text: str) -> None:
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
        return sum(v for found, v in self.samples.get(name, []) if labels.items() <= found.items())

    def by(self, name: str, label: str) -> dict[str, float]:
        """Values of `name` per value of one label."""
        out: dict[str, float] = {}
        for found, v in self.samples.get(name, []):
            if label in found:
                out[found[label]] = out.get(found[label], 0.0) + v
        return out

    def lag_over(self, seconds: float) -> float:
        """Loop-lag observations above `seconds` (a bucket bound)."""
        count = self.value("ranomaly_xapp_loop_lag_seconds_count")
        within = [v for labels, v in self.samples.get("ranomaly_xapp_loop_lag_seconds_bucket", [])
                  if labels.get("le") not in (None, "+Inf") and abs(float(labels["le"]) - seconds) < 1e-9]  # fmt: skip
        return count - (within[0] if within else 0.0)

    def lag_bucket(self, since: Scrape | None) -> float:
        """The upper bound of the loop-lag bucket that holds the largest observation since `since` (inf: beyond)."""
        now = self._buckets()
        before = since._buckets() if since is not None else {}
        total = self.value("ranomaly_xapp_loop_lag_seconds_count") - (
            since.value("ranomaly_xapp_loop_lag_seconds_count") if since is not None else 0.0
        )
        for bound in sorted(now):
            if now[bound] - before.get(bound, 0.0) >= total:
                return bound
        return float("inf")

    def _buckets(self) -> dict[float, float]:
        return {float(labels["le"]): v for labels, v in self.samples.get("ranomaly_xapp_loop_lag_seconds_bucket", [])
                if labels.get("le") not in (None, "+Inf")}  # fmt: skip


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    """Per-label growth between two scrapes, zero entries left out."""
    return {k: int(v - before.get(k, 0.0)) for k, v in sorted(after.items()) if int(v - before.get(k, 0.0))}


class Http:
    """An app's HTTP endpoint; requests carry the API key the app generated in `key_file` once it is there."""

    def __init__(self, port: int, key_file: Path) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.key_file = key_file

    def headers(self) -> dict[str, str]:
        """The API key header (none before the app has written its key)."""
        return {API_KEY_HEADER: read_api_key(self.key_file)} if self.key_file.exists() else {}

    async def request(self, method: str, path: str, timeout_s: float = 10.0, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base, timeout=timeout_s, headers=self.headers()) as client:
            return await client.request(method, path, **kwargs)

    async def answers(self) -> bool:
        try:
            await self.request("GET", "/healthz", timeout_s=2.0)
            return True
        except httpx.HTTPError:
            return False

    async def scrape(self) -> Scrape:
        return Scrape((await self.request("GET", "/metrics")).text)

    async def health(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self.request("GET", "/healthz")).json()
        return body


class App:
    """An app process and its HTTP endpoint."""

    def __init__(self, child: Child, port: int, key_file: Path) -> None:
        self.child = child
        self.http = Http(port, key_file)

    async def start(self) -> None:
        """Start the process and wait until its HTTP server answers."""
        self.child.start()

        async def answering() -> bool:
            if self.child.exit_code() is not None:
                raise RowFailed(f"{self.child.name} exited with status {self.child.exit_code()} at start: "
                                + " | ".join(self.child.tail(4)))  # fmt: skip
            return await self.http.answers()

        await until(f"{self.child.name} to answer on port {self.http.port}", answering, START_S)


class Rig:
    """The parts of one row, stopped in reverse order when the row ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.xapp_state = folder / "xapp-state"  # shared by the row's xApps: one API key, the rApp's credential
        self.children: list[Child] = []

    def child(self, name: str, args: Sequence[str], env: dict[str, str] | None = None) -> Child:
        made = Child(name, args, env or {}, self.folder / f"{name}.log")
        self.children.append(made)
        return made

    def xapp(self, model: Path | None, e2_port: int, redis_url: str | None, port: int | None = None,
             **settings: Any) -> App:  # fmt: skip
        """`ranomaly xapp` with settings given as RANOMALY_XAPP_* variables (its HTTP port free, or `port`)."""
        port = port or free_port()
        args = ["xapp", "--e2", f"127.0.0.1:{e2_port}", "--host", "127.0.0.1", "--a1-port", str(port)]
        if model is not None:
            args += ["--model", str(model)]
        args += ["--datalayer", "redis", "--redis-url", redis_url] if redis_url else ["--datalayer", "memory"]
        env = {f"RANOMALY_XAPP_{k.upper()}": str(v) for k, v in settings.items()}
        env = {"RANOMALY_XAPP_RECONNECT_MIN_S": "0.2", "RANOMALY_XAPP_RECONNECT_MAX_S": "1",
               "RANOMALY_XAPP_MODEL_POLL_S": "0.5", "RANOMALY_XAPP_STATE_DIR": str(self.xapp_state),
               "RANOMALY_XAPP_TRUSTED_MODEL_KEYS": str(signing_keys(self.folder.parent)[1]), **env}  # fmt: skip
        return App(self.child(f"xapp-{len(self.children)}", args, env), port, self.xapp_state / "api-key")

    def rapp(self, redis_url: str, a1_port: int, **settings: object) -> App:
        """`ranomaly rapp` against the xApp's A1-P endpoint, its history and work folders in the row's folder."""
        port = free_port()
        args = ["rapp", "--host", "127.0.0.1", "--port", str(port), "--redis-url", redis_url,
                "--a1-url", f"http://127.0.0.1:{a1_port}", "--history", str(self.folder / "history")]  # fmt: skip
        env = {"RANOMALY_RAPP_WORK_DIR": str(self.folder / "work"), "RANOMALY_RAPP_COLLECT_BLOCK_MS": "100",
               "RANOMALY_RAPP_REPORT_SUMMARIES": "false", "RANOMALY_RAPP_TRAIN_FORECASTER": "false",
               "RANOMALY_RAPP_A1_API_KEY_FILE": str(self.xapp_state / "api-key"),
               "RANOMALY_RAPP_MODEL_SIGNING_KEY_FILE": str(signing_keys(self.folder.parent)[0])}  # fmt: skip
        env |= {f"RANOMALY_RAPP_{k.upper()}": str(v) for k, v in settings.items()}
        return App(self.child(f"rapp-{len(self.children)}", args, env), port, self.folder / "work" / "api-key")

    def sim(self, port: int, cells: int, pace: str, periods: int = 0) -> Child:
        """`ranomaly sim serve` (no realism: every row is sent on time, so what is sent is known)."""
        args = ["sim", "serve", "--port", str(port), "--cells", str(cells), "--pace", pace, "--periods", str(periods)]
        return self.child(f"sim-{len(self.children)}", args, {"RANOMALY_SIM_REALISM": "false"})

    async def close(self) -> None:
        for child in reversed(self.children):
            await child.stop()


class ScriptedNode(pb_grpc.E2NodeServicer):
    """A hostile E2 endpoint: accepts any subscription listing `nodes`, then sends what `send` is given."""

    def __init__(self, nodes: dict[str, list[str]]) -> None:
        self.nodes = nodes
        self.outbox: asyncio.Queue[pb.IndicationBatch] = asyncio.Queue()
        self.subscribed = asyncio.Event()
        self.sent_rows = 0
        self.period_ms = 0
        self._server = grpc.aio.server(options=[("grpc.max_send_message_length", 64 << 20)])
        pb_grpc.add_E2NodeServicer_to_server(self, self._server)
        self.port = 0

    async def start(self) -> int:
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self.port

    async def stop(self) -> None:
        await self._server.stop(0)

    def send(self, *indications: pb.Indication) -> None:
        """Queue one stream message of these indications."""
        self.sent_rows += sum(len(i.cell_ids) for i in indications)
        self.outbox.put_nowait(pb.IndicationBatch(indications=list(indications)))

    async def ListNodes(  # noqa: N802 (the gRPC method's name)
        self, request: pb.ListNodesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListNodesResponse:
        nodes = [pb.NodeInfo(node_id=n, cells=[pb.CellInfo(cell_id=c) for c in cs]) for n, cs in self.nodes.items()]
        return pb.ListNodesResponse(nodes=nodes)

    async def Subscribe(  # noqa: N802 (the gRPC method's name)
        self, request: pb.SubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubscriptionMessage]:
        self.period_ms = request.reporting_period_ms
        nodes = [pb.NodeInfo(node_id=n, cells=[pb.CellInfo(cell_id=c) for c in cs]) for n, cs in self.nodes.items()]
        yield pb.SubscriptionMessage(accepted=pb.SubscriptionAccepted(
            subscription_id="faults", measurements=list(request.measurements),
            reporting_period_ms=request.reporting_period_ms, nodes=nodes))  # fmt: skip
        self.subscribed.set()
        while True:
            yield pb.SubscriptionMessage(batch=await self.outbox.get())


def indication(node: str, start_ms: int, period_ms: int, cells: Sequence[str], values: Sequence[float] | None = None,
               sequence: int = 0) -> pb.Indication:  # fmt: skip
    """One node's indication; values default to 10.0 (in range for every measurement of MEASUREMENTS)."""
    flat = list(values) if values is not None else [10.0] * (len(cells) * len(MEASUREMENTS))
    header = pb.IndicationHeader(node_id=node, collection_start_ms=start_ms, granularity_period_ms=period_ms,
                                 sequence_number=sequence)  # fmt: skip
    return pb.Indication(header=header, cell_ids=list(cells), values=flat)


class Streams:
    """Rows in the xApp's Redis streams, read as they come (a stream is trimmed: read it often)."""

    def __init__(self, redis_url: str) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(redis_url)
        self.keys = sdl_keys()
        self._last = {"kpm": "0", "verdicts": "0"}
        self.kpm_rows = 0
        self.kpm_keys: set[tuple[str, int]] = set()
        self.verdict_rows = 0
        self.verdict_latencies_ms: list[tuple[int, float]] = []  # (entry ms, latency ms from the period's end)
        self.period_ms = 0

    async def read(self) -> None:
        """Read what was added since the last call."""
        for kind, key in (("kpm", self.keys.kpm), ("verdicts", self.keys.verdicts)):
            while True:
                start = f"({self._last[kind]}" if self._last[kind] != "0" else "-"
                entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await self.redis.xrange(key, start, count=1000))
                if not entries:
                    break
                for entry_id, fields in entries:
                    self._last[kind] = entry_id.decode()
                    data = fields[FIELD_DATA.encode()]
                    if kind == "kpm":
                        forward = decode_kpm(data)
                        for ind in forward.indications:
                            self.kpm_rows += len(ind.cell_ids)
                            self.kpm_keys.update((c, ind.header.collection_start_ms) for c in ind.cell_ids)
                    else:
                        batch = decode_verdicts(data)
                        n = len(batch.cell_ids)
                        self.verdict_rows += n
                        if self.period_ms:
                            written = int(self._last[kind].split("-")[0])
                            ends = np.asarray(batch.period_start_ms) + self.period_ms
                            self.verdict_latencies_ms.extend((written, float(written - e)) for e in ends.tolist())

    async def memory(self) -> dict[str, int]:
        """Bytes each stream takes in Redis (MEMORY USAGE)."""
        out = {}
        for kind, key in (("kpm", self.keys.kpm), ("verdicts", self.keys.verdicts), ("incidents", self.keys.incidents)):
            out[kind] = int(await self.redis.memory_usage(key, samples=0) or 0)
        return out

    async def close(self) -> None:
        await self.redis.aclose()


def history_rows(folder: Path) -> tuple[int, int]:
    """Rows in the rApp's KPM history files, and distinct (cell, period) among them."""
    files = sorted((folder / "kpm").rglob("*.parquet")) if (folder / "kpm").exists() else []
    rows, keys = 0, set[tuple[str, int]]()
    for path in files:
        try:
            table = pq.read_table(path, columns=["cell_id", "timestamp"])
        except (OSError, ValueError):
            continue  # a part being written
        rows += table.num_rows
        stamps = table.column("timestamp").cast("int64").to_pylist()
        keys.update(zip(table.column("cell_id").to_pylist(), stamps, strict=True))
    return rows, len(keys)
