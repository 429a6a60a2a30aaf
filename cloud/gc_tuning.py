"""Garbage-collector settings for hub processes that move bulk data (ingest above all).

An ingest batch of 200 telemetry messages is ~11,000 row tuples plus the dicts they came from:
with CPython's default thresholds (a young collection every 700 allocations) the collector ran
every few dozen points and rescanned the batches still alive, about a third of decoding's CPU
(measured on ``bench.ingest``'s payloads: 3.3 against 2.2 us per point with the collector off).
Nearly nothing ingest allocates is cyclic, so collecting rarely loses nothing but a little memory.

``gc.freeze()`` moves what start-up built (modules, settings, the SQLAlchemy mappers, pydantic
validators) out of the collector's view for good: it lives as long as the process anyway.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Allocations between young collections (CPython's default is 700)."""


def tune_for_bulk_work() -> None:
    """Freeze what exists now and collect young objects every :data:`YOUNG_THRESHOLD`
    allocations. Call once, after start-up, in a process of its own (it is process-wide)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
