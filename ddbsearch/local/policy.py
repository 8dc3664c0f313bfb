"""The event source mapping's retry policy, as Lambda documents it, with no I/O.

After each invocation the stream worker asks :func:`first_failure` where the batch
failed and :func:`decide` what to do next: checkpoint the records before the
failure, then split the rest in two (``BisectBatchOnFunctionError``), retry it
after :func:`retry_delay`, or discard it once ``MaximumRetryAttempts`` is spent.
Shard discovery, polling and the destinations stay in :mod:`ddbsearch.local.worker`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ddbsearch.core.pacing import backoff_delay

Action = Literal["done", "bisect", "retry", "discard"]


@dataclass(frozen=True)
class FirstFailure:
    """Where a batch failed: ``index`` of the first record to retry (None: success)."""

    index: int | None
    whole_batch: bool = False  # the function failed (or answered nonsense): all of it retries
    note: str | None = None  # why the response was rejected, for the worker's last_error


def first_failure(
    sequence_numbers: Sequence[str], payload: Any, *, report_batch_item_failures: bool
) -> FirstFailure:
    """Read a returned invocation's partial batch response (``batchItemFailures``).

    "If the response is malformed or names a record not in the batch, Lambda treats
    the whole batch as failed"; otherwise retrying starts at the lowest sequence
    number reported.
    """
    if not report_batch_item_failures or not isinstance(payload, dict):
        return FirstFailure(None)
    failures = payload.get("batchItemFailures")
    if not failures:
        return FirstFailure(None)
    index = {sequence: i for i, sequence in enumerate(sequence_numbers)}
    positions: list[int] = []
    for failure in failures if isinstance(failures, list) else [None]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in index:
            return FirstFailure(0, True, f"invalid batchItemFailures entry: {failure!r}")
        positions.append(index[identifier])
    return FirstFailure(min(positions))


@dataclass(frozen=True)
class Decision:
    succeeded: int  # leading records that are done: the checkpoint moves past them
    action: Action
    partial: bool  # a partial failure (some records reported), for the statistics


def decide(
    size: int,
    failure: FirstFailure,
    *,
    retries: int,
    bisect_on_function_error: bool,
    maximum_retry_attempts: int,
) -> Decision:
    """What to do with a batch of ``size`` records after ``retries`` earlier retries."""
    if failure.index is None:
        return Decision(size, "done", partial=False)
    partial = failure.index > 0 or not failure.whole_batch
    left = size - failure.index
    if failure.whole_batch and bisect_on_function_error and left > 1:
        return Decision(failure.index, "bisect", partial)
    if 0 <= maximum_retry_attempts < retries + 1:  # -1: retry until the record expires
        return Decision(failure.index, "discard", partial)
    return Decision(failure.index, "retry", partial)


def retry_delay(consecutive_failures: int, *, base: float, cap: float) -> float:
    """Seconds before retrying a shard's batch: doubles from ``base`` up to ``cap``.

    Lambda's retries are not jittered: the plain capped exponential.
    """
    return backoff_delay(max(consecutive_failures - 1, 0), base=base, cap=cap, jitter=lambda: 1.0)
