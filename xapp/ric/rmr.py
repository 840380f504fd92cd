"""RMR, the O-RAN SC RIC message router: the endpoint interface, and its binding to librmr_si through ctypes.

The xApp image provides librmr_si.so; only `open_rmr` loads it, so this module imports anywhere. The binding
follows `rmr.h` of o-ran-sc/ric-plt-lib-rmr (SI95 transport):

- Receiving drains the library's ring without blocking (`rmr_torcv_msg`, 0 ms). `fileno()` is `rmr_get_rcvfd`,
  readable while messages wait, for `loop.add_reader`.
- Sending hands a buffer to `rmr_send_msg`/`rmr_rts_msg` and gets one back, often another one: the returned
  buffer is kept for the next send or freed, never the one handed over. A soft failure (RMR_ERR_RETRY, left
  after the library's own retry loop) is tried SEND_RETRIES more times, then reported as False.
- Replies: `rmr_rts_msg` needs the received buffer, which holds the sender's address, so every received
  message keeps its buffer in a private handle. `reply` consumes it (a message is answered once); a message
  never answered frees its buffer when it is dropped. Buffers do not hang on the context, so messages may
  outlive `close()`, but replying after it fails.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from xapp.errors import XappError

log = structlog.get_logger(__name__)

RMR_OK = 0
RMR_ERR_OVERFLOW = 9
RMR_ERR_RETRY = 10
RMR_ERR_TIMEOUT = 12
RMRFL_NONE = 0x00
RMR_MAX_MEID = 32  # the header's meid field, its terminating NUL included
SEND_RETRIES = 3  # attempts after an RMR_ERR_RETRY; each is a retry loop inside the library already
_READY_POLL_S = 0.05

_STATES = (
    "RMR_OK",
    "RMR_ERR_BADARG",
    "RMR_ERR_NOENDPT",
    "RMR_ERR_EMPTY",
    "RMR_ERR_NOHDR",
    "RMR_ERR_SENDFAILED",
    "RMR_ERR_CALLFAILED",
    "RMR_ERR_NOWHOPEN",
    "RMR_ERR_WHID",
    "RMR_ERR_OVERFLOW",
    "RMR_ERR_RETRY",
    "RMR_ERR_RCVFAILED",
    "RMR_ERR_TIMEOUT",
    "RMR_ERR_UNSET",
    "RMR_ERR_TRUNC",
    "RMR_ERR_INITFAILED",
    "RMR_ERR_NOTSUPP",
)


class RmrUnavailable(XappError):
    """The RMR library cannot be loaded or initialised."""


@dataclass(frozen=True, slots=True)
class RmrMessage:
    """A received message: its type, payload, E2 node (MEID) and subscription id (-1: none)."""

    mtype: int
    payload: bytes
    meid: str = ""
    sub_id: int = -1
    handle: object = field(default=None, repr=False, compare=False)  # the receiving endpoint's, for `reply`


class RmrEndpoint(Protocol):
    """One RMR endpoint, driven by one event loop. Sends never raise for a missing route or a full peer."""

    sent: int  # messages sent and replies returned
    send_failures: int  # sends and replies that returned False
    received: int

    def fileno(self) -> int:
        """A descriptor readable exactly while messages wait; -1 once closed."""
        ...

    def ready(self) -> bool:
        """Whether routes are known (RMR has its first route table), so that sends can succeed."""
        ...

    def receive_many(self, limit: int) -> list[RmrMessage]:
        """The waiting messages, at most `limit`, without blocking."""
        ...

    def send(self, mtype: int, payload: bytes, *, meid: str = "", sub_id: int = -1) -> bool:
        """Sends by the route table (mtype, then sub_id); False, counted and logged, if it did not go out."""
        ...

    def reply(self, to: RmrMessage, mtype: int, payload: bytes) -> bool:
        """Returns a message to the sender of `to`, keeping its MEID and sub_id; once per received message."""
        ...

    def close(self) -> None:
        """Releases the endpoint; idempotent."""
        ...


def encode_meid(meid: str) -> bytes:
    """The MEID as RMR carries it: at most 31 bytes, as the header keeps a terminating NUL."""
    encoded = meid.encode()
    if len(encoded) >= RMR_MAX_MEID:
        raise ValueError(f"meid {meid!r}: at most {RMR_MAX_MEID - 1} bytes")
    return encoded


def open_rmr(
    port: int, *, library: str = "librmr_si.so", max_size: int = 65_536, wait_ready_s: float = 30.0
) -> RmrEndpoint:
    """RMR listening on the data `port`; the route table arrives on the library's own port (RMR_RTG_SVC).

    `max_size` is the normal buffer size given to rmr_init and the largest payload this endpoint sends.
    Waits up to `wait_ready_s` for the first route table; an endpoint not ready by then is returned anyway,
    with a warning, as receiving and replying work without routes. RmrUnavailable if RMR cannot start.
    """
    if not 0 < port < 65_536:
        raise ValueError(f"rmr port {port}: must be 1 to 65535")
    if max_size < 1:
        raise ValueError(f"rmr max_size {max_size}: must be positive")
    lib = _load(library)
    ctx = lib.rmr_init(str(port).encode(), max_size, RMRFL_NONE)  # "4560": tcp on all interfaces
    if not ctx:
        errno = ctypes.get_errno()
        raise RmrUnavailable(f"rmr_init on port {port} failed: {os.strerror(errno) if errno else 'no reason given'}")
    fd = lib.rmr_get_rcvfd(ctx)
    if fd < 0:
        lib.rmr_close(ctx)
        raise RmrUnavailable(f"{library}: rmr_get_rcvfd gives no descriptor to poll")
    endpoint = LibRmrEndpoint(lib, ctx, fd, max_size)
    deadline = time.monotonic() + wait_ready_s
    ready = endpoint.ready()
    while not ready and time.monotonic() < deadline:
        time.sleep(_READY_POLL_S)
        ready = endpoint.ready()
    if ready:
        log.info("rmr_open", port=port, library=library)
    else:
        log.warning("rmr_not_ready", port=port, library=library, waited_s=wait_ready_s)
    return endpoint


class _Mbuf(ctypes.Structure):
    """The user-visible head of `rmr_mbuf_t`; the library's private fields follow and are never touched."""

    _fields_ = [
        ("state", ctypes.c_int),
        ("mtype", ctypes.c_int),
        ("len", ctypes.c_int),
        ("payload", ctypes.c_void_p),
        ("xaction", ctypes.c_void_p),
        ("sub_id", ctypes.c_int),
        ("tp_state", ctypes.c_int),
    ]


_BUF = ctypes.c_void_p  # an rmr_mbuf_t* (or the context) as an address; None for NULL
_INT = ctypes.c_int
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "rmr_init": (_BUF, [ctypes.c_char_p, _INT, _INT]),
    "rmr_ready": (_INT, [_BUF]),
    "rmr_get_rcvfd": (_INT, [_BUF]),
    "rmr_close": (None, [_BUF]),
    "rmr_alloc_msg": (_BUF, [_BUF, _INT]),
    "rmr_free_msg": (None, [_BUF]),
    "rmr_payload_size": (_INT, [_BUF]),
    "rmr_realloc_payload": (_BUF, [_BUF, _INT, _INT, _INT]),  # new_len, copy, clone
    "rmr_bytes2payload": (None, [_BUF, ctypes.c_char_p, _INT]),
    "rmr_bytes2meid": (_INT, [_BUF, ctypes.c_char_p, _INT]),
    "rmr_get_meid": (_BUF, [_BUF, ctypes.c_char_p]),
    "rmr_send_msg": (_BUF, [_BUF, _BUF]),
    "rmr_rts_msg": (_BUF, [_BUF, _BUF]),
    "rmr_torcv_msg": (_BUF, [_BUF, _BUF, _INT]),
}


def _load(library: str) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(library, use_errno=True)
    except OSError as exc:
        raise RmrUnavailable(
            f"cannot load the RMR library {library!r} ({exc}); the xApp image provides librmr_si.so: "
            "put its folder on LD_LIBRARY_PATH or give its path"
        ) from exc
    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            function = getattr(lib, name)
        except AttributeError as exc:
            raise RmrUnavailable(f"{library!r} is not an RMR library: it lacks {name}") from exc
        function.restype = restype
        function.argtypes = argtypes
    return lib


class _Received:
    """A received buffer kept for `reply`: freed by the reply, or when its message is dropped."""

    __slots__ = ("_free", "_ptr")

    def __init__(self, free: Callable[[int], object], ptr: int) -> None:
        self._free = free
        self._ptr: int | None = ptr

    def take(self) -> int | None:
        """The buffer, now the caller's to free; None if already taken."""
        ptr, self._ptr = self._ptr, None
        return ptr

    def __del__(self) -> None:
        if self._ptr is not None:
            self._free(self._ptr)


class LibRmrEndpoint:
    """RmrEndpoint over librmr_si, made by `open_rmr`; not thread-safe."""

    def __init__(self, lib: ctypes.CDLL, ctx: int, fd: int, max_size: int) -> None:
        self._lib = lib
        self._ctx: int | None = ctx
        self._fd = fd
        self._max_size = max_size
        self._sbuf: int | None = None  # the buffer the last send returned, for the next one
        self._meid = ctypes.create_string_buffer(RMR_MAX_MEID)
        self.sent = 0
        self.send_failures = 0
        self.received = 0

    def fileno(self) -> int:
        """rmr_get_rcvfd: readable while the receive ring holds messages."""
        return self._fd

    def ready(self) -> bool:
        """rmr_ready: a route table has arrived."""
        return self._ctx is not None and bool(self._lib.rmr_ready(self._ctx))

    def receive_many(self, limit: int) -> list[RmrMessage]:
        """Up to `limit` messages from the ring; each keeps its buffer for a reply until dropped."""
        messages: list[RmrMessage] = []
        if self._ctx is None:
            return messages
        lib = self._lib
        for _ in range(limit):
            ptr = lib.rmr_torcv_msg(self._ctx, None, 0)
            if not ptr:
                break
            mbuf = _Mbuf.from_address(ptr)
            if mbuf.state != RMR_OK:  # RMR_ERR_TIMEOUT: empty ring, from libraries that always return a buffer
                state = mbuf.state
                lib.rmr_free_msg(ptr)
                if state == RMR_ERR_TIMEOUT:
                    break
                log.warning("rmr_receive_failed", state=_state_name(state))
                continue
            lib.rmr_get_meid(ptr, self._meid)
            payload = ctypes.string_at(mbuf.payload, mbuf.len) if mbuf.len > 0 else b""
            meid = self._meid.value.decode(errors="replace")
            messages.append(RmrMessage(mbuf.mtype, payload, meid, mbuf.sub_id, _Received(lib.rmr_free_msg, ptr)))
        self.received += len(messages)
        return messages

    def send(self, mtype: int, payload: bytes, *, meid: str = "", sub_id: int = -1) -> bool:
        """rmr_send_msg by mtype and sub_id; ValueError for an MEID RMR cannot carry."""
        meid_bytes = encode_meid(meid)
        if self._ctx is None:
            return self._failed(mtype, "closed")
        if len(payload) > self._max_size:
            return self._failed(mtype, "payload larger than max_size", size=len(payload))
        ptr = self._sbuf or self._lib.rmr_alloc_msg(self._ctx, 0)  # 0: rmr_init's normal size
        self._sbuf = None
        if not ptr:
            return self._failed(mtype, "rmr_alloc_msg failed")
        ptr, filled = self._fill(ptr, mtype, payload, sub_id)
        if filled and self._lib.rmr_bytes2meid(ptr, meid_bytes, len(meid_bytes)) < 0:
            filled = False
        if not filled:
            self._sbuf = ptr
            return self._failed(mtype, "buffer cannot hold the message", size=len(payload))
        self._sbuf, state = self._transmit(self._lib.rmr_send_msg, ptr)
        return self._outcome(mtype, state)

    def reply(self, to: RmrMessage, mtype: int, payload: bytes) -> bool:
        """rmr_rts_msg on the buffer `to` arrived in; ValueError if this kind of endpoint did not receive it."""
        handle = to.handle
        if not isinstance(handle, _Received):
            raise ValueError("reply: the message was not received from the RMR library")
        ptr = handle.take()
        if ptr is None:
            return self._failed(mtype, "message already answered")
        if self._ctx is None or len(payload) > self._max_size:
            self._lib.rmr_free_msg(ptr)
            return self._failed(mtype, "closed" if self._ctx is None else "payload larger than max_size")
        ptr, filled = self._fill(ptr, mtype, payload, to.sub_id)
        if not filled:
            self._lib.rmr_free_msg(ptr)
            return self._failed(mtype, "buffer cannot hold the message", size=len(payload))
        returned, state = self._transmit(self._lib.rmr_rts_msg, ptr)
        if returned is not None:
            self._lib.rmr_free_msg(returned)
        return self._outcome(mtype, state)

    def close(self) -> None:
        """rmr_close; the send buffer is freed, received messages free theirs when dropped."""
        if self._ctx is None:
            return
        if self._sbuf is not None:
            self._lib.rmr_free_msg(self._sbuf)
            self._sbuf = None
        self._lib.rmr_close(self._ctx)
        self._ctx = None
        self._fd = -1
        log.info("rmr_closed", sent=self.sent, send_failures=self.send_failures, received=self.received)

    def _fill(self, ptr: int, mtype: int, payload: bytes, sub_id: int) -> tuple[int, bool]:
        """The buffer now held (reallocated when too small) and whether it holds the payload, mtype and sub_id."""
        lib = self._lib
        if lib.rmr_payload_size(ptr) < len(payload):
            grown = lib.rmr_realloc_payload(ptr, len(payload), 0, 0)  # keeps the header: MEID, the sender
            if not grown:
                return ptr, False
            ptr = grown
        lib.rmr_bytes2payload(ptr, payload, len(payload))
        mbuf = _Mbuf.from_address(ptr)
        if mbuf.state == RMR_ERR_OVERFLOW or mbuf.len != len(payload):
            return ptr, False
        mbuf.mtype = mtype
        mbuf.sub_id = sub_id
        return ptr, True

    def _transmit(self, function: Callable[[int | None, int], Any], ptr: int) -> tuple[int | None, int | None]:
        """Hands `ptr` to a send function, retrying RMR_ERR_RETRY: the buffer returned and its state (None: lost)."""
        attempt = 0
        while True:
            returned = function(self._ctx, ptr)
            if not returned:
                return None, None
            state: int = _Mbuf.from_address(returned).state
            if state != RMR_ERR_RETRY or attempt == SEND_RETRIES:
                return returned, state
            attempt += 1
            ptr = returned

    def _outcome(self, mtype: int, state: int | None) -> bool:
        if state == RMR_OK:
            self.sent += 1
            return True
        return self._failed(mtype, "the library returned no buffer" if state is None else _state_name(state))

    def _failed(self, mtype: int, reason: str, **fields: object) -> bool:
        self.send_failures += 1
        log.warning("rmr_send_failed", mtype=mtype, reason=reason, **fields)
        return False


def _state_name(state: int) -> str:
    return _STATES[state] if 0 <= state < len(_STATES) else f"state {state}"
