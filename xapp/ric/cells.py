"""The cells the xApp subscribes to inside an O-RAN SC RIC: `CELL=MEID/PLMN/NCI`, one subscription each.

E2SM-KPM report style 1 reports one cell per subscription, named by its cell global id (PLMN identity and
36-bit NR cell identity) on the E2 node the RIC calls MEID. The xApp names the cell CELL in verdicts,
incidents and the data layer, as the gRPC path names cells by the node's cell id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENTRY = re.compile(r"^(?P<cell>[^=/\s]+)=(?P<meid>[^=/\s]+)/(?P<plmn>\d{5,6})/(?P<nci>0x[0-9a-fA-F]+|\d+)$")
NCI_MAX = 2**36 - 1


@dataclass(frozen=True, slots=True)
class RicCell:
    """One subscribed cell: its name here, its E2 node, and its cell global id."""

    cell_id: str
    meid: str
    plmn: str  # MCC and MNC digits
    nci: int  # 36-bit NR cell identity


def parse_ric_cell(entry: str) -> RicCell:
    """Read `CELL=MEID/PLMN/NCI` (NCI decimal or 0x-hex); ValueError names what is wrong."""
    match = _ENTRY.match(entry.strip())
    if match is None:
        raise ValueError(f"ric cell {entry!r}: expected CELL=MEID/PLMN/NCI, for example gnb-001-c1=gnb_001/00101/0x1")
    nci = int(match["nci"], 0)
    if nci > NCI_MAX:
        raise ValueError(f"ric cell {entry!r}: NR cell identity {nci} is wider than 36 bits")
    return RicCell(match["cell"], match["meid"], match["plmn"], nci)


def parse_ric_cells(entries: list[str]) -> list[RicCell]:
    """Every entry parsed; a cell named twice is an error."""
    cells = [parse_ric_cell(entry) for entry in entries]
    seen: set[str] = set()
    for cell in cells:
        if cell.cell_id in seen:
            raise ValueError(f"ric cell {cell.cell_id!r} is named twice")
        seen.add(cell.cell_id)
    return cells
