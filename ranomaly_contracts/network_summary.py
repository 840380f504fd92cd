"""The network summary entry (`STREAM_NETWORK_SUMMARY`): one replica's nodes in one period, per measurement.

Binary, because an entry covers every node of a replica each period (thousands of nodes x measurements):
a JSON header line, then two little-endian arrays of nodes x measurements, row-major (one row per node in
the header's `nodes` order, columns in `measurements` order):

    {"v": 2, "replica": int, "period_start_ms": int, "period_ms": int, "measurements": [str], "nodes": [str]}\\n
    count: int32[nodes x measurements]    values the node's cells reported (no value and out of range: not counted)
    mean:  float32[nodes x measurements]  their mean; NaN where count is 0

A reader joins the entries of one period over the replicas (each holds its own share of the nodes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

VERSION = 2
_COUNT = np.dtype("<i4")
_MEAN = np.dtype("<f4")


@dataclass(frozen=True)
class SummaryEntry:
    """One replica's nodes in one period: count and mean per node (row) and measurement (column)."""

    replica: int
    period_start_ms: int
    period_ms: int
    measurements: list[str]
    nodes: list[str]
    count: np.ndarray  # [nodes, measurements] int32
    mean: np.ndarray  # [nodes, measurements] float32, NaN where count is 0

    def encode(self) -> bytes:
        header = {"v": VERSION, "replica": self.replica, "period_start_ms": self.period_start_ms,
                  "period_ms": self.period_ms, "measurements": self.measurements, "nodes": self.nodes}  # fmt: skip
        return b"".join((json.dumps(header).encode(), b"\n", self.count.astype(_COUNT).tobytes(),
                         self.mean.astype(_MEAN).tobytes()))  # fmt: skip

    @classmethod
    def decode(cls, record: bytes) -> SummaryEntry:
        """Raises ValueError saying what is malformed."""
        line, newline, arrays = record.partition(b"\n")
        if not newline:
            raise ValueError("network summary entry: no header line")
        try:
            header = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"network summary entry: header is not JSON ({exc})") from exc
        if not isinstance(header, dict) or header.get("v") != VERSION:
            raise ValueError(f"network summary entry: header version is not {VERSION}")
        try:
            nodes, measurements = list(header["nodes"]), list(header["measurements"])
            shape = (len(nodes), len(measurements))
            cells = shape[0] * shape[1]
            if len(arrays) != cells * (_COUNT.itemsize + _MEAN.itemsize):
                raise ValueError(f"{len(arrays)} bytes of arrays for {shape[0]} nodes x {shape[1]} measurements")
            count = np.frombuffer(arrays, _COUNT, cells).reshape(shape)
            mean = np.frombuffer(arrays, _MEAN, cells, offset=cells * _COUNT.itemsize).reshape(shape)
            return cls(int(header["replica"]), int(header["period_start_ms"]), int(header["period_ms"]),
                       measurements, nodes, count, mean)  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise ValueError(f"network summary entry: header lacks or misspells {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"network summary entry: {exc}") from exc
