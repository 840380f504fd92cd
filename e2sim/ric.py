"""Simulated E2 nodes inside an O-RAN SC RIC: E2SM-KPM indications in E2AP RICindications, aligned PER, as RMR.

A subscription arrives as the subscription manager passes it on (E2 node name, RAN function id, event
trigger and action definitions, the E2 event instance id the RIC assigned). Report style 1 with action
definition format 1 names one cell by its cell global id; every period that cell's measurements go out as one
RIC_INDICATION (12050) whose RMR subscription id is the instance id, with header format 1 and message
format 1 in the subscribed measurement order. A record with no value is noValue; a cell that did not report
sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from e2sim.encoding import KPM_VERSION, kpm_records
from e2sim.source import KpmSource, nr_cell_identities
from ranomaly_contracts.e2sm.e2ap import RicIndication, encode_ric_indication
from ranomaly_contracts.e2sm.kpm import (
    decode_action_definition,
    decode_event_trigger,
    encode_indication_header,
    encode_indication_message_format1,
)

RIC_INDICATION = 12050
REQUESTOR_ID = 1


class RmrSender(Protocol):
    """The part of an RMR endpoint the nodes use (the xApp's binding and its fake both have it)."""

    def send(self, mtype: int, payload: bytes, *, meid: str = "", sub_id: int = -1) -> bool:
        """Route a message by type and subscription id; False if it could not be sent."""
        ...


class RicSubscriptionError(ValueError):
    """A subscription the simulated node refuses; the message names what is wrong."""


@dataclass(frozen=True)
class _Report:
    instance_id: int
    ran_function_id: int
    action_id: int
    cell: int
    columns: np.ndarray  # source catalogue positions, subscribed order
    names: tuple[str, ...]
    integer: tuple[bool, ...]


class RicE2Nodes:
    """The source's nodes as an O-RAN SC RIC sees them, sending KPM reports through an RMR endpoint."""

    def __init__(
        self,
        source: KpmSource,
        endpoint: RmrSender,
        plmn: str = "00101",
        version: int = KPM_VERSION,
        ran_function_id: int = 2,
    ) -> None:
        self.source = source
        self.plmn = plmn
        self.version = version
        self.ran_function_id = ran_function_id
        self._endpoint = endpoint
        self._nci = nr_cell_identities(source)
        self._cell_by_cgi = {(plmn, int(n)): i for i, n in enumerate(self._nci)}
        self._reports: dict[int, _Report] = {}
        self._sequence: dict[int, int] = {}

    def ric_cells(self) -> list[str]:
        """Every cell as the xApp's `ric_cells` setting names it: CELL=MEID/PLMN/NCI."""
        src = self.source
        return [
            f"{cell_id}={src.node_ids[int(src.cell_node[i])]}/{self.plmn}/{int(self._nci[i])}"
            for i, cell_id in enumerate(src.cell_ids)
        ]

    def subscribe(
        self, meid: str, ran_function_id: int, event_trigger: bytes, actions: list[tuple[int, bytes]], instance_id: int
    ) -> None:
        """Start reporting for a subscription; RicSubscriptionError if the node cannot serve it."""
        if ran_function_id != self.ran_function_id:
            raise RicSubscriptionError(f"RAN function {ran_function_id}: this node's KPM is {self.ran_function_id}")
        decode_event_trigger(event_trigger)
        catalogue = {m.name: i for i, m in enumerate(self.source.measurements)}
        for action_id, definition in actions:
            action = decode_action_definition(definition)
            if action.cell is None:
                raise RicSubscriptionError("action definition: report style 1 here needs a cell global id")
            cell = self._cell_by_cgi.get((action.cell.plmn, action.cell.nci))
            if cell is None or self.source.node_ids[int(self.source.cell_node[cell])] != meid:
                raise RicSubscriptionError(f"action definition: no cell {action.cell} on node {meid!r}")
            unknown = [name for name in action.measurements if name not in catalogue]
            if unknown:
                raise RicSubscriptionError(f"action definition: unknown measurements {unknown}")
            columns = np.array([catalogue[name] for name in action.measurements], dtype=np.int64)
            integer = tuple(self.source.measurements[c].integer for c in columns.tolist())
            self._reports[instance_id] = _Report(
                instance_id, ran_function_id, action_id, cell, columns, tuple(action.measurements), integer
            )
            self._sequence.setdefault(instance_id, 0)

    def unsubscribe(self, instance_id: int) -> None:
        """Stop reporting for a subscription (unknown ids are ignored)."""
        self._reports.pop(instance_id, None)

    def encode(self, first_period: int, count: int, period_ms: int) -> list[tuple[int, bytes]]:
        """(RMR subscription id, RICindication) of every report of the periods, in period order."""
        block = self.source.block(first_period, count, period_ms)
        out: list[tuple[int, bytes]] = []
        for t in range(count):
            start_ms = int(block.times_ms[t])
            header = encode_indication_header(start_ms, version=self.version)
            for report in self._reports.values():
                if block.reported is not None and not block.reported[t, report.cell]:
                    continue
                records = kpm_records(block.values[t, report.cell, report.columns].tolist(), report.integer)
                message = encode_indication_message_format1(report.names, records, period_ms)
                sequence = self._sequence[report.instance_id]
                self._sequence[report.instance_id] = (sequence + 1) % 65_536
                out.append((report.instance_id, self._envelope(report, sequence, header, message)))
        return out

    def emit(self, first_period: int, count: int, period_ms: int) -> int:
        """Send the reports of the periods; how many the RMR endpoint took."""
        sent = 0
        for instance_id, payload in self.encode(first_period, count, period_ms):
            sent += self._endpoint.send(RIC_INDICATION, payload, sub_id=instance_id)
        return sent

    @staticmethod
    def _envelope(report: _Report, sequence: int, header: bytes, message: bytes) -> bytes:
        return encode_ric_indication(
            RicIndication(
                requestor_id=REQUESTOR_ID, instance_id=report.instance_id, ran_function_id=report.ran_function_id,
                action_id=report.action_id, sequence=sequence, indication_type="report", header=header,
                message=message, call_process_id=None,
            )
        )  # fmt: skip
