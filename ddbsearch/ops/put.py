"""``put``: batched writes to DynamoDB (BatchWriteItem, 25 at a time) with UnprocessedItems
retried; ``--rate`` paces them with :class:`ddbsearch.core.pacing.Pacer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddbsearch.clients import aws_errors
from ddbsearch.core.pacing import Pacer, backoff_delay
from ddbsearch.errors import DdbsearchError, InputError, PartialFailure
from ddbsearch.items import Item, key_of
from ddbsearch.targets import Target

BATCH_LIMIT = 25  # BatchWriteItem's maximum number of requests per call


@dataclass
class WriteReport:
    written: int = 0
    requests: int = 0
    retried: int = 0  # items re-sent because DynamoDB returned them as UnprocessedItems
    unprocessed: list[Item] = field(default_factory=list)  # still unwritten after all retries
    seconds: float = 0.0


def batches(
    items: Iterable[Item], key_names: Sequence[str], size: int = BATCH_LIMIT
) -> Iterable[list[Item]]:
    """Groups of at most ``size`` items with no key twice in a group.

    BatchWriteItem rejects a batch that names one key twice; a repeated key starts a
    new batch instead, so the later line of a file still wins, as with PutItem.
    """
    batch: list[Item] = []
    keys: set[tuple[Any, ...]] = set()
    for item in items:
        key = key_of(item, key_names)
        if len(batch) >= size or key in keys:
            yield batch
            batch, keys = [], set()
        batch.append(item)
        keys.add(key)
    if batch:
        yield batch


def write_items(
    ddb: Any,
    table: str,
    items: Iterable[Item],
    key_names: Sequence[str],
    *,
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    max_attempts: int = 8,
    base_delay: float = 0.05,
    max_delay: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> WriteReport:
    """Write ``items`` with BatchWriteItem; retry UnprocessedItems with jittered backoff.

    ``rate`` caps the average items written per second. Throttling errors on the call
    itself are retried by botocore; items DynamoDB leaves unprocessed are re-sent up to
    ``max_attempts`` times, then reported in :class:`WriteReport` (never dropped
    silently). Raises :class:`PartialFailure` only via :func:`raise_for_report`.
    """
    report = WriteReport()
    started = time.monotonic()
    size = BATCH_LIMIT if rate is None else max(1, min(BATCH_LIMIT, int(rate)))
    pacer = Pacer(rate, burst=float(size), sleep=sleep)
    for batch in batches(items, key_names, size):
        pacer.acquire(len(batch))
        pending = [{"PutRequest": {"Item": item}} for item in batch]
        attempt = 0
        while pending:
            try:
                with aws_errors(f"writing to table '{table}'"):
                    response = ddb.batch_write_item(RequestItems={table: pending})
            except DdbsearchError as exc:
                if not report.written:
                    raise  # nothing written: the error as it is (unreachable, auth, ...)
                raise PartialFailure(
                    f"{exc.message}, after {report.written} item(s) were written",
                    hint="items are keyed, so running the same input again is safe",
                ) from exc
            report.requests += 1
            left = (response.get("UnprocessedItems") or {}).get(table, [])
            done = len(pending) - len(left)
            report.written += done
            if on_progress and done:
                on_progress(done)
            if not left:
                break
            attempt += 1
            if attempt >= max_attempts:
                report.unprocessed.extend(r["PutRequest"]["Item"] for r in left)
                break
            report.retried += len(left)
            sleep(backoff_delay(attempt, base=base_delay, cap=max_delay))
            pending = left
    report.seconds = time.monotonic() - started
    return report


def raise_for_report(report: WriteReport) -> None:
    if report.unprocessed:
        raise PartialFailure(
            f"{len(report.unprocessed)} item(s) were still unprocessed after retries "
            f"({report.written} written)",
            hint="the table is throttling: retry later or lower --rate",
        )


ItemInput = Mapping[str, Any] | tuple[str, Item]


def put(
    target: Target,
    items: Iterable[ItemInput] = (),
    *,
    generate: int | None = None,
    seed: int | None = None,
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> WriteReport:
    """Write items to the target's table; its stream then indexes them.

    ``items`` are JSON objects, plain (``{"userId": 3, "note": "x"}``) or DynamoDB
    JSON (``{"userId": {"N": "3"}}``), or ``(where, item)`` pairs already parsed
    by :mod:`ddbsearch.items` (``where`` names the item in errors). Every item is
    checked against the table's keys before anything is written: one bad item
    means nothing is written (:class:`~ddbsearch.errors.InputError`).
    ``generate`` writes that many demo transactions instead. Items still
    unprocessed after retries are in the report (see :func:`raise_for_report`).
    """
    from ddbsearch import clients
    from ddbsearch.items import item_from_json, validate_item
    from ddbsearch.tables import describe_table

    labelled: list[tuple[str, Item]] = []
    for number, entry in enumerate(items, start=1):
        if isinstance(entry, tuple):
            labelled.append(entry)
        else:
            where = f"item {number}"
            labelled.append((where, item_from_json(dict(entry), where)))
    if labelled and generate is not None:
        raise InputError("give items or generate, not both")
    ddb = clients.client(target, "dynamodb")
    table = describe_table(ddb, target.table)
    for where, item in labelled:
        validate_item(item, table, where)
    source: Iterable[Item]
    if generate is not None:
        from ddbsearch.testing.data import generate_transactions

        source = generate_transactions(generate, seed=seed, table=table)
    else:
        source = [item for _, item in labelled]
    return write_items(
        ddb, target.table, source, table.key_names, rate=rate, on_progress=on_progress
    )
