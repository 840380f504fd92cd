"""Per-node clocks: the time that decides a node's lateness and gaps, which no single indication can move far.

A node's clock is the newest collection start it delivered (or the network's time, when it fell silent).
A start ahead of the clock is accepted only within a bound:
- a node whose stream is paced in real time (over its first periods its data advanced no faster than the
  receiving clock) may not run ahead of the receiving clock by more than a slack; it may jump forward as
  far as the receiving clock went (a node back from an outage);
- any other node (accelerated simulation, replays of old data, a node too new to tell) may move at most
  `max_jump_periods` ahead of its clock.
A start beyond the bound is refused (counted by the caller). A node that keeps reporting beyond it on a
timeline of its own (`reanchor_after` starts in a row, each within the jump bound of the one before)
has restarted on another timeline: its clock follows it from there.
The network's time is the lower median of the node clocks, so no single node moves it either. A new node's
first start is judged as if its clock stood at the network's time (the very first node's is taken as it is:
there is nothing to judge it by).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A node is judged paced or not once its own starts span this many periods.
PACE_SPAN_PERIODS = 3
NO_TIME = -(2**62)

AHEAD_OF_NODE = "ahead_of_node"
AHEAD_OF_RECEIVE_CLOCK = "ahead_of_receive_clock"


@dataclass(frozen=True)
class ClockBounds:
    """How far a node's collection starts may move ahead."""

    period_ms: int
    max_jump_periods: int = 10
    slack_ms: int = 10_000
    reanchor_after: int = 3


class NodeClock:
    """One node's time and what it says about the node's pace."""

    __slots__ = ("ms", "first_ms", "first_ns", "offset_ms", "paced", "ahead_ms", "ahead_run")

    def __init__(self, start_ms: int, received_ns: int) -> None:
        self.ms = start_ms  # the node's clock
        self._restart(start_ms, received_ns)

    def _restart(self, start_ms: int, received_ns: int) -> None:
        """A new timeline from start_ms (received at received_ns), its pace not judged yet."""
        self.first_ms = start_ms
        self.first_ns = received_ns
        self.offset_ms = received_ns // 1_000_000 - start_ms  # least (receipt - start) seen: the fastest delivery
        self.paced: bool | None = None
        self.ahead_ms = NO_TIME  # the last start refused as ahead, and how many in a row were
        self.ahead_run = 0

    def limit(self, received_ns: int, bounds: ClockBounds) -> int:
        """The latest start acceptable now."""
        if self.paced:
            return received_ns // 1_000_000 - self.offset_ms + bounds.slack_ms
        return self.ms + bounds.max_jump_periods * bounds.period_ms

    def check(self, start_ms: int, received_ns: int, bounds: ClockBounds) -> str | None:
        """None if a start ahead of the clock is acceptable (then `advance` to it); else why it is refused.

        A refusal counts towards the node's restart on a timeline of its own.
        """
        if start_ms <= self.limit(received_ns, bounds):
            return None
        jump = bounds.max_jump_periods * bounds.period_ms
        consistent = self.ahead_ms < start_ms <= self.ahead_ms + jump
        self.ahead_run = self.ahead_run + 1 if consistent else 1
        self.ahead_ms = start_ms
        if self.ahead_run >= bounds.reanchor_after:  # a timeline of its own: restart there
            self._restart(start_ms, received_ns)
            return None
        return AHEAD_OF_RECEIVE_CLOCK if self.paced else AHEAD_OF_NODE

    def advance(self, start_ms: int, received_ns: int, bounds: ClockBounds) -> None:
        """The node delivered start_ms (accepted): move the clock and judge its pace (`advance_all` of one)."""
        advance_all((self,), (start_ms,), received_ns, bounds)


def all_within_limits(
    clocks: Sequence[NodeClock], starts: Sequence[int], received_ns: int, bounds: ClockBounds
) -> bool:
    """Whether each start is within its clock's `limit` (one loop, not a call per clock: a stream message
    moves thousands of clocks at once)."""
    receipt_bound = received_ns // 1_000_000 + bounds.slack_ms
    jump = bounds.max_jump_periods * bounds.period_ms
    for clock, start in zip(clocks, starts, strict=True):
        if clock.paced:
            if start + clock.offset_ms > receipt_bound:
                return False
        elif start > clock.ms + jump:
            return False
    return True


def advance_all(clocks: Sequence[NodeClock], starts: Sequence[int], received_ns: int, bounds: ClockBounds) -> None:
    """Each node delivered its start (accepted): move its clock and judge its pace, in one loop (a stream
    message moves thousands of clocks at once, so not a call per clock)."""
    received_ms = received_ns // 1_000_000
    span_ms = PACE_SPAN_PERIODS * bounds.period_ms
    for clock, start in zip(clocks, starts, strict=True):
        clock.ahead_run = 0
        if start > clock.ms:
            clock.ms = start
        paced = clock.paced
        if paced is False:  # its receipt times no longer matter
            continue
        if received_ms - start < clock.offset_ms:
            clock.offset_ms = received_ms - start
        if paced is None and start - clock.first_ms >= span_ms:
            lead = (start - clock.first_ms) - (received_ns - clock.first_ns) // 1_000_000
            clock.paced = lead <= bounds.slack_ms


def lower_median(clocks: dict[str, NodeClock]) -> int:
    """The network's time: the lower median of the node clocks (NO_TIME without nodes)."""
    if not clocks:
        return NO_TIME
    times = np.fromiter((clock.ms for clock in clocks.values()), dtype=np.int64, count=len(clocks))
    middle = (len(times) - 1) // 2
    return int(np.partition(times, middle)[middle])


def catching_up(newest_ms: int, watermark_ms: int, received_ago_ms: float, period_ms: int) -> bool:
    """Whether a network's time that stood still for a period means a backlog, not silence: stream messages
    still come in (the last one less than a period ago) and none is ahead of the network's time by more than a
    period. Then the streams are not quiet, the xApp is working through what they sent; closing the periods it
    has not read yet as gaps would drop its rows as late when it reads them. A minority of nodes that moved on
    while the rest fell silent is ahead of the network's time: not a backlog."""
    return received_ago_ms < period_ms and newest_ms <= watermark_ms + period_ms
