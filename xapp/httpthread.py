"""The xApp's HTTP server (A1-P, health, metrics) in a thread of its own, with an event loop of its own.

Request parsing, JSON-schema validation and responses never run on the scoring loop. The A1 handler here
writes through this thread's own data-layer handle (`DataLayer.policy_data()`: its own Redis connection),
and its store follows the policy change stream like every other replica's; the engine learns of changes
from the same stream, on its own loop. The status of an instance is read from the engine's view (a
lookup, no lock). Health and metrics are snapshots the scoring loop takes when asked (`call_on_loop`, a
bounded wait: a blocked scoring loop gets the last one). A1 over RMR is answered on this loop too
(`A1RmrOnThread`).

The thread shares the interpreter (the GIL) with the scoring loop, so its work is bounded in two ways:
the GIL switch interval is lowered to `SWITCH_INTERVAL_S` (a busy HTTP thread holds the scoring loop up
for a fraction of a millisecond at a time rather than 5 ms), and A1 requests run one at a time, each
followed by a pause that keeps A1 work to `A1_CPU_SHARE` of the interpreter (`CpuShare`). A flood of A1
requests then waits its turn on the HTTP thread instead of slowing scoring; health and metrics skip the
queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any, TypeVar

import structlog
import uvicorn
from fastapi import FastAPI

from ranomaly_contracts.tls import ServerTls, uvicorn_ssl
from xapp.datalayer.base import DataLayerUnavailable
from xapp.datalayer.policies import PolicyData
from xapp.errors import XappError
from xapp.policy.follow import PolicyFollower
from xapp.policy.handler import A1Handler
from xapp.policy.rmr import A1RmrAdapter
from xapp.policy.store import PolicyStore

log = structlog.get_logger(__name__)

T = TypeVar("T")

SWITCH_INTERVAL_S = 0.0005
A1_CPU_SHARE = 0.2  # of the interpreter's time, at most, for A1 requests while they queue
A1_PREFIX = "/A1-P/"
_TICK_S = 0.25  # how often this thread's store reads the change stream
# An idle kept-alive connection stays open longer than clients keep theirs (httpx 5 s, most pools under a
# minute), so the client closes first: a server that closes first races the client's next request on it.
KEEP_ALIVE_S = 75


async def call_on_loop(loop: asyncio.AbstractEventLoop | None, fn: Callable[[], None], timeout_s: float) -> bool:
    """Run `fn` on another thread's event loop, between its tasks, waiting up to timeout_s; whether it ran."""
    if loop is None:
        return False
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        if done.set_running_or_notify_cancel():
            fn()
            done.set_result(None)

    try:
        loop.call_soon_threadsafe(run)
        await asyncio.wait_for(asyncio.wrap_future(done), timeout_s)
    except (RuntimeError, TimeoutError):  # the loop is closed, or busy past the bound
        return False
    return True


class CpuShare:
    """ASGI middleware: requests under `prefix` run one at a time, and after each (its response sent) the next
    waits long enough that they take at most `share` of this thread's time; other paths pass straight on."""

    def __init__(self, app: Any, prefix: str = A1_PREFIX, share: float = A1_CPU_SHARE) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self._app, self._prefix, self._share = app, prefix, share
        self._turn: asyncio.Lock | None = None  # made on the serving loop

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self._prefix):
            await self._app(scope, receive, send)
            return
        self._turn = self._turn or asyncio.Lock()
        async with self._turn:
            began = time.thread_time()
            try:
                await self._app(scope, receive, send)
            finally:
                spent = time.thread_time() - began
                await asyncio.sleep(spent * (1 - self._share) / self._share)


class HttpThread:
    """Serves the application `build_app()` makes on host:port from a daemon thread.

    `store` is the A1 handler's store over `data` (this thread's data-layer handle): the thread loads it and
    keeps it in step with the change stream. With `tls` it serves HTTPS (mutual TLS with a client CA). With
    `health` (an app and a port), that app is served too, on plain HTTP, once the main one listens (its port:
    `health_port`). start(), then `await listening()`; `stop()` and `await join()`.
    """

    def __init__(
        self,
        build_app: Callable[[], FastAPI],
        store: PolicyStore,
        data: PolicyData,
        host: str,
        port: int,
        tls: ServerTls | None = None,
        health: tuple[Callable[[], FastAPI], int] | None = None,
    ) -> None:
        self._build_app = build_app
        self._health = health
        self.health_port: int | None = None
        self._ssl = uvicorn_ssl(tls)  # the files read now: a TLS mistake stops the start, naming the file
        self.store = store
        self._data = data
        self._host, self._port = host, port
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._listening = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="xapp-http", daemon=True)

    def start(self) -> None:
        """Start the thread (and lower the GIL switch interval, see the module docstring)."""
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._thread.start()

    async def listening(self) -> int:
        """Wait until the server listens; its port. XappError if the thread ended first."""
        while not self._listening.is_set():
            if not self._thread.is_alive():
                raise XappError(f"the HTTP server on port {self._port} did not start: {self._failure!r}")
            await asyncio.sleep(0.01)
        assert self.port is not None
        return self.port

    @property
    def alive(self) -> bool:
        """Whether the thread still runs."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Ask the server to finish (from any thread)."""
        loop, server = self._loop, self._server
        if loop is not None and server is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                loop.call_soon_threadsafe(setattr, server, "should_exit", True)

    async def join(self, timeout_s: float = 10.0) -> None:
        """Wait for the thread to end (bounded)."""
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, timeout_s)

    async def submit(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on this thread's loop and wait for its result from another loop."""
        if self._loop is None or not self._thread.is_alive():
            work.close()
            raise XappError("the HTTP thread is not running")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # kept for listening() and logged: the thread must not die silently
            self._failure = exc
            log.exception("http_thread_failed")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        config = uvicorn.Config(
            CpuShare(self._build_app()), host=self._host, port=self._port, log_level="warning", lifespan="off",
            access_log=False, timeout_keep_alive=KEEP_ALIVE_S, **self._ssl,
        )  # fmt: skip
        server = self._server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(), name="http")
        following = asyncio.create_task(self._follow(), name="a1 changes")
        try:
            while not server.started:
                if serving.done():
                    serving.result()
                    raise XappError(f"the HTTP server on port {self._port} did not start")
                await asyncio.sleep(0.01)
            self.port = int(server.servers[0].sockets[0].getsockname()[1])
            health = await self._serve_health()
            self._listening.set()
            try:
                await serving
            finally:
                if health is not None:
                    health[0].should_exit = True
                    await asyncio.gather(health[1], return_exceptions=True)
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
            await self._data.release()

    async def _serve_health(self) -> tuple[uvicorn.Server, asyncio.Task[None]] | None:
        """Start the health app's server, if there is one, and wait until it listens."""
        if self._health is None:
            return None
        build, port = self._health
        server = uvicorn.Server(uvicorn.Config(build(), host=self._host, port=port, log_level="warning",
                                               lifespan="off", access_log=False))  # fmt: skip
        serving = asyncio.create_task(server.serve(), name="health")
        while not server.started:
            if serving.done():
                serving.result()
                raise XappError(f"the health server on port {port} did not start")
            await asyncio.sleep(0.01)
        self.health_port = int(server.servers[0].sockets[0].getsockname()[1])
        return server, serving

    async def _follow(self) -> None:
        """Load this thread's store, then apply other writers' changes (other replicas) every tick."""
        follower = PolicyFollower(self.store, self._data)
        while True:
            try:
                await self.store.load()
                await follower.poll()
            except DataLayerUnavailable as exc:
                log.debug("http_policies_unavailable", problem=str(exc))
            await asyncio.sleep(_TICK_S)


class A1RmrOnThread(A1RmrAdapter):
    """A1 over RMR answered on the HTTP thread's loop, where the A1 handler and its store live."""

    def __init__(self, handler: A1Handler, handler_id: str, thread: HttpThread) -> None:
        super().__init__(handler, handler_id)
        self._thread = thread

    async def handle_request(self, payload: bytes) -> bytes | None:
        """The 20011 reply, computed on the HTTP thread; None (logged) if that thread is not running."""
        try:
            return await self._thread.submit(super().handle_request(payload))
        except XappError as exc:
            log.error("a1_rmr_not_answered", problem=str(exc))
            return None
