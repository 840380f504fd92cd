"""RMR: the ctypes binding against a C stub of librmr_si (compiled here), the in-process fake, and their contract."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import gc
import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from xapp.ric.fakermr import FakeRmrEndpoint, FakeRmrRouter
from xapp.ric.rmr import SEND_RETRIES, RmrEndpoint, RmrMessage, RmrUnavailable, open_rmr

STUB_SOURCE = Path(__file__).parent / "data" / "rmr_stub.c"
STUB_MT_RETRY = 990  # the stub answers RMR_ERR_RETRY as often as the first payload byte says
STUB_MT_NO_ROUTE = 991
INDICATION, POLICY_REQ, POLICY_RESP = 12050, 20010, 20011
MAX_SIZE = 4096


@pytest.fixture(scope="module")
def stub_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """tests/data/rmr_stub.c built as a shared library."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is not on PATH: these tests compile tests/data/rmr_stub.c, a stand-in for librmr_si")
    target = tmp_path_factory.mktemp("rmr") / "librmr_stub.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-Wall", "-o", str(target), str(STUB_SOURCE)], check=True)
    return str(target)


@pytest.fixture(scope="module")
def stub(stub_path: str) -> ctypes.CDLL:
    """The stub itself, for its counters."""
    lib = ctypes.CDLL(stub_path)
    lib.rmr_stub_counter.argtypes = [ctypes.c_char_p]
    lib.rmr_stub_counter.restype = ctypes.c_int
    return lib


def counter(stub: ctypes.CDLL, name: str) -> int:
    value: int = stub.rmr_stub_counter(name.encode())
    return value


@pytest.fixture
def library_endpoint(stub_path: str) -> Iterator[RmrEndpoint]:
    """The ctypes binding on the stub, whose sends all come back to it."""
    endpoint = open_rmr(4560, library=stub_path, max_size=MAX_SIZE, wait_ready_s=2.0)
    yield endpoint
    endpoint.close()


@pytest.fixture(params=["library", "fake"])
def loopback(request: pytest.FixtureRequest) -> Iterator[RmrEndpoint]:
    """An endpoint whose sends come back to it: the binding on the stub, or the fake routed to itself."""
    if request.param == "library":
        library = request.getfixturevalue("stub_path")
        endpoint: RmrEndpoint = open_rmr(4560, library=library, max_size=MAX_SIZE, wait_ready_s=2.0)
        yield endpoint
        endpoint.close()
        return
    router = FakeRmrRouter(max_size=MAX_SIZE)
    for mtype in (INDICATION, POLICY_REQ, POLICY_RESP):
        router.route(mtype, to="xapp")
    yield router.endpoint("xapp")
    router.close()


def readable(endpoint: RmrEndpoint) -> bool:
    return bool(select.select([endpoint.fileno()], [], [], 0)[0])


# ---- the contract, on both


def test_round_trip_keeps_type_payload_meid_and_sub_id(loopback: RmrEndpoint) -> None:
    assert loopback.ready()
    assert not readable(loopback)
    assert loopback.send(INDICATION, b"\x00\x01kpm\xff", meid="gnb_734_733_b5c67788", sub_id=7)
    assert readable(loopback)
    assert loopback.send(POLICY_REQ, b"")
    messages = loopback.receive_many(10)
    assert messages == [
        RmrMessage(INDICATION, b"\x00\x01kpm\xff", "gnb_734_733_b5c67788", 7),
        RmrMessage(POLICY_REQ, b"", "", -1),
    ]
    assert not readable(loopback)
    assert loopback.receive_many(10) == []
    assert (loopback.sent, loopback.send_failures, loopback.received) == (2, 0, 2)


def test_receive_many_takes_at_most_limit(loopback: RmrEndpoint) -> None:
    for i in range(5):
        assert loopback.send(INDICATION, bytes([i]))
    assert [m.payload for m in loopback.receive_many(2)] == [b"\x00", b"\x01"]
    assert readable(loopback)
    assert [m.payload for m in loopback.receive_many(10)] == [b"\x02", b"\x03", b"\x04"]
    assert not readable(loopback)


def test_reply_returns_to_sender_once(loopback: RmrEndpoint) -> None:
    assert loopback.send(POLICY_REQ, b"{}", meid="gnb_1", sub_id=3)
    [request] = loopback.receive_many(10)
    answer = b'{"status": "OK"}' * 100  # larger than the request's buffer
    assert loopback.reply(request, POLICY_RESP, answer)
    assert loopback.receive_many(10) == [RmrMessage(POLICY_RESP, answer, "gnb_1", 3)]
    assert not loopback.reply(request, POLICY_RESP, answer)
    assert (loopback.sent, loopback.send_failures) == (2, 1)
    with pytest.raises(ValueError, match="reply"):
        loopback.reply(RmrMessage(POLICY_REQ, b"{}"), POLICY_RESP, b"{}")


def test_size_and_meid_limits(loopback: RmrEndpoint) -> None:
    assert loopback.send(INDICATION, bytes(MAX_SIZE))
    assert not loopback.send(INDICATION, bytes(MAX_SIZE + 1))
    assert loopback.send(INDICATION, b"", meid="m" * 31)
    with pytest.raises(ValueError, match="meid"):
        loopback.send(INDICATION, b"", meid="m" * 32)
    assert [len(m.payload) for m in loopback.receive_many(10)] == [MAX_SIZE, 0]
    assert (loopback.sent, loopback.send_failures) == (2, 1)


async def test_add_reader_drains_every_message(loopback: RmrEndpoint) -> None:
    loop = asyncio.get_running_loop()
    total = 600
    payloads: list[bytes] = []
    done = loop.create_future()

    def drain() -> None:
        payloads.extend(m.payload for m in loopback.receive_many(64))
        if len(payloads) == total and not done.done():
            done.set_result(None)

    loop.add_reader(loopback.fileno(), drain)
    try:
        for i in range(total):
            assert loopback.send(INDICATION, i.to_bytes(2, "big"))
            if i % 100 == 99:
                await asyncio.sleep(0)
        await asyncio.wait_for(done, 5)
    finally:
        loop.remove_reader(loopback.fileno())
    assert payloads == [i.to_bytes(2, "big") for i in range(total)]
    assert not readable(loopback)


def test_close_is_final(loopback: RmrEndpoint) -> None:
    assert loopback.send(POLICY_REQ, b"{}")
    [request] = loopback.receive_many(1)
    loopback.close()
    loopback.close()
    assert loopback.fileno() == -1
    assert not loopback.ready()
    assert not loopback.send(INDICATION, b"x")
    assert not loopback.reply(request, POLICY_RESP, b"{}")
    assert loopback.receive_many(10) == []


# ---- the ctypes binding


def test_soft_failures_are_retried_a_bounded_number_of_times(library_endpoint: RmrEndpoint, stub: ctypes.CDLL) -> None:
    before = counter(stub, "attempts")
    assert library_endpoint.send(STUB_MT_RETRY, bytes([SEND_RETRIES]))
    assert counter(stub, "attempts") - before == SEND_RETRIES + 1
    before = counter(stub, "attempts")
    assert not library_endpoint.send(STUB_MT_RETRY, bytes([SEND_RETRIES + 1]))
    assert counter(stub, "attempts") - before == SEND_RETRIES + 1
    before = counter(stub, "attempts")
    assert not library_endpoint.send(STUB_MT_NO_ROUTE, b"x")
    assert counter(stub, "attempts") - before == 1
    assert (library_endpoint.sent, library_endpoint.send_failures) == (1, 2)
    assert library_endpoint.send(INDICATION, b"after failures")
    assert [m.payload for m in library_endpoint.receive_many(10)] == [bytes([SEND_RETRIES]), b"after failures"]


def test_replies_use_rts_and_payloads_grow_their_buffers(library_endpoint: RmrEndpoint, stub: ctypes.CDLL) -> None:
    returned = counter(stub, "returned")
    for size in (1, 100, 3000, MAX_SIZE):  # the stub returns a 16-byte buffer after every send
        assert library_endpoint.send(INDICATION, bytes(range(256)) * (size // 256) + b"z" * (size % 256))
    assert [len(m.payload) for m in library_endpoint.receive_many(10)] == [1, 100, 3000, MAX_SIZE]
    assert library_endpoint.send(POLICY_REQ, b"{}", meid="gnb_1")
    [request] = library_endpoint.receive_many(1)
    assert library_endpoint.reply(request, POLICY_RESP, b"r" * 2000)
    assert counter(stub, "returned") - returned == 1
    assert library_endpoint.receive_many(1)[0].payload == b"r" * 2000


def test_buffers_are_freed(stub_path: str, stub: ctypes.CDLL) -> None:
    gc.collect()
    live = counter(stub, "live")
    endpoint = open_rmr(4560, library=stub_path, max_size=MAX_SIZE, wait_ready_s=2.0)
    for mtype in (INDICATION, POLICY_REQ, POLICY_REQ):
        assert endpoint.send(mtype, b"payload")
    answered, dropped, kept = endpoint.receive_many(10)
    assert endpoint.reply(answered, POLICY_RESP, b"reply")  # its buffer goes out; the reply comes back
    assert endpoint.send(INDICATION, b"left in the ring")
    in_use = counter(stub, "live")
    del dropped
    assert counter(stub, "live") == in_use - 1
    endpoint.close()  # frees the send buffer and whatever waits in the ring
    assert counter(stub, "live") == live + 1
    del kept
    assert counter(stub, "live") == live


def test_ready_may_come_after_open(stub_path: str) -> None:
    endpoint = open_rmr(4561, library=stub_path, wait_ready_s=0)
    try:
        assert any(endpoint.ready() for _ in range(5))  # the stub is ready from its third poll on
    finally:
        endpoint.close()


def test_unavailable_library_is_named(stub_path: str) -> None:
    with pytest.raises(RmrUnavailable, match=r"librmr_nowhere\.so.*LD_LIBRARY_PATH"):
        open_rmr(4560, library="librmr_nowhere.so")
    libc = ctypes.util.find_library("c")
    assert libc is not None
    with pytest.raises(RmrUnavailable, match="lacks rmr_init"):
        open_rmr(4560, library=libc)
    with pytest.raises(RmrUnavailable, match=os.strerror(errno.EADDRINUSE)):
        open_rmr(1, library=stub_path)  # the stub's port in use
    with pytest.raises(ValueError, match="port"):
        open_rmr(0, library=stub_path)


# ---- the fake's fabric


@pytest.fixture
def router() -> Iterator[FakeRmrRouter]:
    fabric = FakeRmrRouter(queue_size=4, max_size=MAX_SIZE)
    yield fabric
    fabric.close()


def test_routes_by_type_then_subscription(router: FakeRmrRouter) -> None:
    xapp, submgr, a1, kpimon = (router.endpoint(n) for n in ("xapp", "submgr", "a1", "kpimon"))
    router.route(INDICATION, to="xapp", sub_id=1)
    router.route(INDICATION, to="kpimon")
    router.route(POLICY_REQ, to="xapp")
    router.route(POLICY_REQ, to="kpimon")  # fan-out: both get a copy
    assert submgr.send(INDICATION, b"s1", meid="gnb_1", sub_id=1)
    assert submgr.send(INDICATION, b"s2", meid="gnb_1", sub_id=2)
    assert a1.send(POLICY_REQ, b"p")
    assert not a1.send(POLICY_RESP, b"unrouted")
    assert [(m.mtype, m.payload) for m in xapp.receive_many(10)] == [(INDICATION, b"s1"), (POLICY_REQ, b"p")]
    assert [(m.mtype, m.payload) for m in kpimon.receive_many(10)] == [(INDICATION, b"s2"), (POLICY_REQ, b"p")]
    assert (a1.sent, a1.send_failures, xapp.received) == (1, 1, 2)


def test_reply_goes_to_the_sender(router: FakeRmrRouter) -> None:
    xapp, a1, other = router.endpoint("xapp"), router.endpoint("a1"), router.endpoint("other")
    router.route(POLICY_REQ, to="xapp")
    assert a1.send(POLICY_REQ, b"from a1", sub_id=5)
    assert other.send(POLICY_REQ, b"from other")
    from_a1, from_other = xapp.receive_many(10)
    assert xapp.reply(from_other, POLICY_RESP, b"to other")  # no route for 20011: replies need none
    assert xapp.reply(from_a1, POLICY_RESP, b"to a1")
    assert a1.receive_many(10) == [RmrMessage(POLICY_RESP, b"to a1", "", 5)]
    assert [m.payload for m in other.receive_many(10)] == [b"to other"]
    xapp.close()
    assert not a1.send(POLICY_REQ, b"to a closed endpoint")


def test_full_queue_refuses_and_counts(router: FakeRmrRouter) -> None:
    xapp, e2 = router.endpoint("xapp"), router.endpoint("e2")
    router.route(INDICATION, to="xapp")
    assert all(e2.send(INDICATION, bytes([i])) for i in range(4))
    assert not e2.send(INDICATION, b"over")
    assert (xapp.dropped, e2.send_failures, e2.sent) == (1, 1, 4)
    assert len(xapp.receive_many(2)) == 2
    assert e2.send(INDICATION, b"room again")
    assert [m.payload for m in xapp.receive_many(10)] == [b"\x02", b"\x03", b"room again"]


def test_endpoints_own_their_descriptors(router: FakeRmrRouter) -> None:
    xapp = router.endpoint("xapp")
    with pytest.raises(ValueError, match="exists"):
        router.endpoint("xapp")
    fd = xapp.fileno()
    os.fstat(fd)
    router.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    assert isinstance(router.endpoint("xapp"), FakeRmrEndpoint)  # a closed name may be used again
