"""Realistic items of the reference table ``UsersTransactions`` and Lambda-shaped stream events.

Keys: ``userId`` (N, hash) and ``transactionId`` (N, range); attributes
``accountId`` N, ``amount`` N (decimal), ``shortDescription`` S, plus a few
nested ones (a merchant map, a tags string set, a list of line items), so that
documents are about the size of a card transaction record (~400 bytes JSON).
Deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

TABLE = "UsersTransactions"
KEY_NAMES = ("userId", "transactionId")
STREAM_ARN = (
    "arn:aws:dynamodb:us-east-1:123456789012:table/UsersTransactions/stream/2026-11-27T00:00:00.000"
)
_WORDS = [
    "coffee",
    "beans",
    "groceries",
    "rent",
    "refund",
    "salary",
    "train",
    "ticket",
    "book",
    "store",
    "cinema",
    "lunch",
    "dinner",
    "hotel",
    "flight",
    "taxi",
    "pharmacy",
    "gym",
    "subscription",
    "electricity",
    "water",
    "phone",
]
_CITIES = ("Tokyo", "Osaka", "Berlin", "Paris", "Lyon", "Austin", "Denver", "Porto")
_CATEGORIES = ("food", "travel", "bills", "leisure", "health", "shopping")


def item(rng: random.Random, user_id: int, transaction_id: int) -> dict[str, Any]:
    """One table item in DynamoDB JSON."""
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 5)))
    lines = [
        {
            "M": {
                "sku": {"S": f"SKU-{rng.randint(10000, 99999)}"},
                "qty": {"N": str(rng.randint(1, 4))},
                "price": {"N": f"{rng.randint(1, 20000) / 100:.2f}"},
            }
        }
        for _ in range(rng.randint(1, 3))
    ]
    return {
        "userId": {"N": str(user_id)},
        "transactionId": {"N": str(transaction_id)},
        "accountId": {"N": str(user_id * 10 + rng.randint(0, 2))},
        "amount": {"N": f"{rng.randint(1, 500000) / 100:.2f}"},
        "shortDescription": {"S": words},
        "currency": {"S": rng.choice(("JPY", "EUR", "USD"))},
        "createdAt": {"S": f"2026-11-{rng.randint(1, 27):02d}T{rng.randint(0, 23):02d}:00:00Z"},
        "merchant": {
            "M": {
                "name": {"S": f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()}"},
                "city": {"S": rng.choice(_CITIES)},
                "mcc": {"N": str(rng.randint(1000, 9999))},
                "geo": {
                    "M": {
                        "lat": {"N": f"{rng.uniform(-90, 90):.5f}"},
                        "lon": {"N": f"{rng.uniform(-180, 180):.5f}"},
                    }
                },
            }
        },
        "tags": {"SS": sorted(set(rng.sample(_CATEGORIES, rng.randint(1, 3))))},
        "lineItems": {"L": lines},
        "settled": {"BOOL": rng.random() < 0.8},
    }


def items(count: int, *, seed: int = 7, users: int = 500) -> Iterator[dict[str, Any]]:
    """``count`` distinct items (for loading a table)."""
    rng = random.Random(seed)
    for n in range(count):
        yield item(rng, 1 + n % users, 1_000_000 + n)


def _size(image: dict[str, Any]) -> int:
    return len(repr(image))  # stands in for SizeBytes; nothing reads it


def stream_records(
    count: int,
    *,
    seed: int = 11,
    mix: tuple[float, float, float] = (0.5, 0.35, 0.15),
    start_time: int = 1_795_780_000,
) -> list[dict[str, Any]]:
    """``count`` Lambda-shaped records, INSERT/MODIFY/REMOVE in the given proportions.

    MODIFY and REMOVE touch keys inserted earlier in the sequence (as a real
    stream would); about 20 records share each ApproximateCreationDateTime second.
    """
    rng = random.Random(seed)
    live: list[tuple[int, int]] = []
    records: list[dict[str, Any]] = []
    images: dict[tuple[int, int], dict[str, Any]] = {}
    next_tx = 1
    for n in range(count):
        roll = rng.random()
        if not live or roll < mix[0]:
            name = "INSERT"
            key = (rng.randint(1, 5000), next_tx)
            next_tx += 1
            live.append(key)
        elif roll < mix[0] + mix[1]:
            name = "MODIFY"
            key = live[rng.randrange(len(live))]
        else:
            name = "REMOVE"
            key = live.pop(rng.randrange(len(live)))
        keys = {"userId": {"N": str(key[0])}, "transactionId": {"N": str(key[1])}}
        ddb: dict[str, Any] = {
            "ApproximateCreationDateTime": start_time + n // 20,
            "Keys": keys,
            "SequenceNumber": str(4421584500000000017450439091 + n),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        old = images.get(key)
        if name != "REMOVE":
            new = item(rng, key[0], key[1])
            ddb["NewImage"] = new
            images[key] = new
        else:
            images.pop(key, None)
        if old is not None and name != "INSERT":
            ddb["OldImage"] = old
        ddb["SizeBytes"] = _size(ddb.get("NewImage") or keys)
        records.append(
            {
                "eventID": f"{n:032x}",
                "eventName": name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": ddb,
                "eventSourceARN": STREAM_ARN,
            }
        )
    return records


def batches(records: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """Lambda events of ``size`` records each."""
    return [{"Records": records[i : i + size]} for i in range(0, len(records), size)]
