"""A big body taken in slices, the event loop turning between them.

A 16 MiB POST (or MQTT payload) decoded and counted in one go holds every other client, the
exporter and the watchdog for half a second; in slices of 1 MiB of NDJSON and 5,000 records
each step stays within milliseconds. The verdicts, and their order, are the same.
"""

from __future__ import annotations

import asyncio

from plugins.ingest.decode import Decoded, decode_body, decode_ndjson
from plugins.ingest.tally import Tally

SLICE_BYTES = 1 << 20
SLICE_RECORDS = 5000


async def decode_in_slices(body: bytes) -> list[Decoded]:
    """decode_body(), NDJSON a slice of whole lines at a time; ValueError as it raises.

    A JSON array is decoded in one call (it cannot be cut without parsing it).
    """
    data = body.strip()
    if data[:1] == b"[" or len(data) <= SLICE_BYTES:
        return decode_body(body)
    out: list[Decoded] = []
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + SLICE_BYTES)
        end = len(data) if end == -1 else end
        out += decode_ndjson(data, start, end)
        start = end + 1
        await asyncio.sleep(0)
    return out


async def count_in_slices(tally: Tally, decoded: list[Decoded]) -> list[str]:
    """Tally.count_many() over slices of SLICE_RECORDS: the reason for each record, in order."""
    if len(decoded) <= SLICE_RECORDS:
        return tally.count_many(decoded)
    reasons: list[str] = []
    for i in range(0, len(decoded), SLICE_RECORDS):
        reasons += tally.count_many(decoded[i:i + SLICE_RECORDS])
        await asyncio.sleep(0)
    return reasons
