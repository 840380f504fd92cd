"""An in-process RMR fabric for tests and benchmarks: endpoints with the `RmrEndpoint` interface, one route table.

Routes go by message type and subscription id, as in RMR's table: `(mtype, sub_id)` first, then `(mtype, any)`;
a route may name several endpoints, and each gets a copy (RMR's fan-out). Each endpoint's receive queue is
bounded, as RMR's ring is: a send to a full queue returns False and the drop is counted there. `fileno()` is a
pipe that holds one byte exactly while the queue is not empty, so `loop.add_reader` works as on the library.
Payloads over `max_size` and MEIDs RMR cannot carry are refused as `LibRmrEndpoint` refuses them, and a
message is answered once, as a received buffer is.
"""

from __future__ import annotations

import os
from collections import deque

from xapp.ric.rmr import RmrMessage, encode_meid

_ANY_SUB_ID = -1


class FakeRmrRouter:
    """The fabric: named endpoints and the route table they share."""

    def __init__(self, *, queue_size: int = 4096, max_size: int = 65_536) -> None:
        self.queue_size = queue_size
        self.max_size = max_size
        self._endpoints: dict[str, FakeRmrEndpoint] = {}
        self._routes: dict[tuple[int, int], list[str]] = {}

    def endpoint(self, name: str) -> FakeRmrEndpoint:
        """A new endpoint; a name in use by an open endpoint is a ValueError."""
        existing = self._endpoints.get(name)
        if existing is not None and not existing.closed:
            raise ValueError(f"rmr endpoint {name!r} exists")
        endpoint = FakeRmrEndpoint(self, name)
        self._endpoints[name] = endpoint
        return endpoint

    def route(self, mtype: int, to: str, sub_id: int | None = None) -> None:
        """Routes `mtype` (only for `sub_id`, if given) to the endpoint named `to`, besides any already routed."""
        self._routes.setdefault((mtype, _ANY_SUB_ID if sub_id is None else sub_id), []).append(to)

    def close(self) -> None:
        """Closes every endpoint."""
        for endpoint in self._endpoints.values():
            endpoint.close()

    def _destinations(self, mtype: int, sub_id: int) -> list[FakeRmrEndpoint]:
        names = self._routes.get((mtype, sub_id)) or self._routes.get((mtype, _ANY_SUB_ID), [])
        endpoints = (self._endpoints.get(name) for name in names)
        return [endpoint for endpoint in endpoints if endpoint is not None and not endpoint.closed]


class _ReturnAddress:
    """A received message's way back to its sender, usable once."""

    __slots__ = ("sender",)

    def __init__(self, sender: FakeRmrEndpoint) -> None:
        self.sender: FakeRmrEndpoint | None = sender

    def take(self) -> FakeRmrEndpoint | None:
        sender, self.sender = self.sender, None
        return sender


class FakeRmrEndpoint:
    """One endpoint of a FakeRmrRouter, with the RmrEndpoint interface; `dropped` counts what its queue refused."""

    def __init__(self, router: FakeRmrRouter, name: str) -> None:
        self.name = name
        self.closed = False
        self.sent = 0
        self.send_failures = 0
        self.received = 0
        self.dropped = 0
        self._router = router
        self._queue: deque[RmrMessage] = deque()
        self._read_fd, self._write_fd = os.pipe()
        self._signalled = False  # the pipe holds its byte

    def fileno(self) -> int:
        """The pipe's read end, readable exactly while messages wait; -1 once closed."""
        return -1 if self.closed else self._read_fd

    def ready(self) -> bool:
        """True while open: the route table is there from the start."""
        return not self.closed

    def receive_many(self, limit: int) -> list[RmrMessage]:
        """Up to `limit` waiting messages, oldest first."""
        queue = self._queue
        count = max(0, min(limit, len(queue)))
        messages = [queue.popleft() for _ in range(count)]
        if not queue and self._signalled:
            os.read(self._read_fd, 1)
            self._signalled = False
        self.received += count
        return messages

    def send(self, mtype: int, payload: bytes, *, meid: str = "", sub_id: int = -1) -> bool:
        """Delivers to every endpoint routed for (mtype, sub_id); False if none is, or one's queue is full."""
        encode_meid(meid)
        if self.closed or len(payload) > self._router.max_size:
            return self._failed()
        destinations = self._router._destinations(mtype, sub_id)
        if not destinations:
            return self._failed()
        delivered = [
            endpoint._deliver(RmrMessage(mtype, payload, meid, sub_id, _ReturnAddress(self)))
            for endpoint in destinations
        ]
        if not all(delivered):
            return self._failed()
        self.sent += 1
        return True

    def reply(self, to: RmrMessage, mtype: int, payload: bytes) -> bool:
        """Returns a message to the sender of `to`, with its MEID and sub_id; ValueError if not from this fabric."""
        address = to.handle
        if not isinstance(address, _ReturnAddress):
            raise ValueError("reply: the message was not received from a FakeRmrRouter")
        sender = address.take()
        if sender is None or sender.closed or self.closed or len(payload) > self._router.max_size:
            return self._failed()
        if not sender._deliver(RmrMessage(mtype, payload, to.meid, to.sub_id, _ReturnAddress(self))):
            return self._failed()
        self.sent += 1
        return True

    def close(self) -> None:
        """Drops waiting messages and closes the pipe; idempotent."""
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        os.close(self._read_fd)
        os.close(self._write_fd)

    def _deliver(self, message: RmrMessage) -> bool:
        if len(self._queue) >= self._router.queue_size:
            self.dropped += 1
            return False
        self._queue.append(message)
        if not self._signalled:
            os.write(self._write_fd, b"\x01")
            self._signalled = True
        return True

    def _failed(self) -> bool:
        self.send_failures += 1
        return False
