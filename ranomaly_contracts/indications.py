"""Decoding E2 indications (proto/ ranomaly.e2.v1) into arrays: the form every consumer works on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ranomaly_contracts.e2.v1 import e2_pb2 as pb

# Collection starts from here on are not times (year 10000 and later): refused, never computed with.
MAX_COLLECTION_START_MS = 253_402_300_800_000


class IndicationError(ValueError):
    """A malformed indication; the message names the node and what is wrong."""


@dataclass(frozen=True, slots=True)
class DecodedIndication:
    """One node's report for one period: values [cells, measurements], NaN where no value."""

    node_id: str
    collection_start_ms: int
    period_ms: int
    sequence: int
    cell_ids: list[str]
    values: np.ndarray


def decode_indication(indication: pb.Indication, n_measurements: int) -> DecodedIndication:
    """Check and decode one indication of a subscription with n_measurements measurements."""
    header = indication.header
    node = header.node_id or "<no node_id>"
    cell_ids = list(indication.cell_ids)
    expected = len(cell_ids) * n_measurements
    values = np.array(indication.values, dtype=np.float32)
    if values.size != expected:
        raise IndicationError(
            f"node {node}: {values.size} values for {len(cell_ids)} cells x {n_measurements} measurements"
        )
    if not np.isfinite(values).all():
        raise IndicationError(f"node {node}: a value is NaN or infinite; no value is marked in no_value")
    if indication.no_value:
        gaps = np.array(indication.no_value, dtype=np.int64)
        if gaps.max() >= expected:
            raise IndicationError(f"node {node}: no_value index {int(gaps.max())} is beyond {expected} records")
        values[gaps] = np.nan
    return DecodedIndication(
        node_id=header.node_id,
        collection_start_ms=header.collection_start_ms,
        period_ms=header.granularity_period_ms,
        sequence=header.sequence_number,
        cell_ids=cell_ids,
        values=values.reshape(len(cell_ids), n_measurements),
    )
