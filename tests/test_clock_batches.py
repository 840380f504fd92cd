"""The per-message clock loops: all_within_limits agrees with NodeClock.limit, advance_all moves each clock by
the rule."""

from __future__ import annotations

import copy
import random

import pytest

from xapp.clocks import PACE_SPAN_PERIODS, ClockBounds, NodeClock, advance_all, all_within_limits

BOUNDS = ClockBounds(period_ms=250, max_jump_periods=10, slack_ms=10_000)
T0_MS = 1_767_571_200_000


def _clock(rng: random.Random) -> NodeClock:
    """A clock in any of its states: pace not judged, paced, not paced; an offset from any delivery."""
    start = T0_MS + rng.randrange(0, 100) * BOUNDS.period_ms
    clock = NodeClock(start, (start + rng.randrange(0, 3_000)) * 1_000_000)
    clock.paced = rng.choice([None, True, False])
    clock.ahead_run = rng.randrange(0, 3)
    return clock


def _state(clock: NodeClock) -> tuple[object, ...]:
    return tuple(getattr(clock, name) for name in NodeClock.__slots__)


def test_the_bound_of_a_message_is_each_clocks_limit() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        clock = _clock(rng)
        received_ns = (clock.ms + rng.randrange(-20_000, 20_000)) * 1_000_000
        limit = clock.limit(received_ns, BOUNDS)
        for start in (clock.ms + rng.randrange(1, 60) * BOUNDS.period_ms, limit, limit + 1):  # and at the bound
            assert all_within_limits([clock], [start], received_ns, BOUNDS) == (start <= limit)


def test_a_message_beyond_one_clocks_limit_is_beyond_the_bound() -> None:
    rng = random.Random(8)
    clocks = [_clock(rng) for _ in range(50)]
    received_ns = (T0_MS + 200 * BOUNDS.period_ms) * 1_000_000
    starts = [clock.ms + BOUNDS.period_ms for clock in clocks]
    within = [start <= clock.limit(received_ns, BOUNDS) for clock, start in zip(clocks, starts, strict=True)]
    assert all_within_limits(clocks, starts, received_ns, BOUNDS) == all(within)
    far = clocks[17].limit(received_ns, BOUNDS) + BOUNDS.period_ms
    assert not all_within_limits(clocks, [*starts[:17], far, *starts[18:]], received_ns, BOUNDS)


def _advanced(clock: NodeClock, start: int, received_ns: int) -> tuple[object, ...]:
    """What advancing one clock must leave, spelled out: the newest start, the fastest delivery (unless judged
    not paced) and, once its starts span PACE_SPAN_PERIODS, the judgement of its pace."""
    moved = copy.copy(clock)
    moved.ahead_run, moved.ms = 0, max(clock.ms, start)
    if clock.paced is not False:
        moved.offset_ms = min(clock.offset_ms, received_ns // 1_000_000 - start)
        if clock.paced is None and start - clock.first_ms >= PACE_SPAN_PERIODS * BOUNDS.period_ms:
            lead = (start - clock.first_ms) - (received_ns - clock.first_ns) // 1_000_000
            moved.paced = lead <= BOUNDS.slack_ms
    return _state(moved)


@pytest.mark.parametrize(
    "early_ms", range(0, 30_000, 2_500)
)  # receipts from on time to far ahead: leads around the slack
def test_moving_a_message_s_clocks_is_advancing_each(early_ms: int) -> None:
    rng = random.Random(early_ms)
    clocks = [_clock(rng) for _ in range(3_000)]
    starts = [clock.ms + rng.randrange(1, 8) * BOUNDS.period_ms for clock in clocks]
    received_ns = (max(starts) - early_ms) * 1_000_000
    expected = [_advanced(clock, start, received_ns) for clock, start in zip(clocks, starts, strict=True)]
    single = copy.copy(clocks[0])
    single.advance(starts[0], received_ns, BOUNDS)
    advance_all(clocks, starts, received_ns, BOUNDS)
    assert [_state(clock) for clock in clocks] == expected
    assert _state(single) == expected[0], "NodeClock.advance is the same move"
    assert {clock.paced for clock in clocks} == {None, True, False}, "every state was exercised"
