"""Demo and test data: realistic card transactions for the reference table (or any keys).

``ddbsearch put --generate N`` writes these; tests and benchmarks use them as
their data set. Deterministic for a given seed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from ddbsearch.items import AttributeValue, Item
from ddbsearch.tables import TableInfo

_MERCHANTS = (
    "Blue Bottle Coffee", "Green Grocer", "City Transit", "Mega Mart", "Corner Bakery",
    "Sunrise Pharmacy", "Northwind Books", "Riverside Cinema", "Harbor Fuel", "Cloud Storage Co",
    "Fresh Market", "Urban Outfitters", "Pixel Electronics", "Golden Dragon", "Luigi's Pizzeria",
)  # fmt: skip
_CATEGORIES = {
    "Blue Bottle Coffee": "dining", "Green Grocer": "groceries", "City Transit": "transport",
    "Mega Mart": "shopping", "Corner Bakery": "dining", "Sunrise Pharmacy": "health",
    "Northwind Books": "shopping", "Riverside Cinema": "entertainment", "Harbor Fuel": "transport",
    "Cloud Storage Co": "subscriptions", "Fresh Market": "groceries",
    "Urban Outfitters": "shopping", "Pixel Electronics": "electronics",
    "Golden Dragon": "dining", "Luigi's Pizzeria": "dining",
}  # fmt: skip
_WHAT = (
    "coffee", "groceries", "monthly pass", "weekly shop", "croissants", "prescription",
    "paperback", "movie tickets", "fuel", "subscription", "vegetables", "jacket",
    "headphones", "dinner", "pizza", "refund", "gift card", "test purchase",
)  # fmt: skip
_ADJECTIVES = ("mega", "small", "large", "express", "premium", "final", "quick", "family")
_CURRENCIES = ("USD", "USD", "USD", "EUR", "GBP")
_STATUSES = ("SETTLED", "SETTLED", "SETTLED", "PENDING", "DECLINED")


def generate_transactions(
    count: int,
    *,
    seed: int | None = None,
    now: datetime | None = None,
    users: int | None = None,
    table: TableInfo | None = None,
) -> Iterator[Item]:
    """``count`` realistic card transactions for the reference table (UsersTransactions).

    The reference table is keyed on ``userId`` (N) and ``transactionId`` (N).
    ``transactionId`` is unique; ``userId`` repeats across a pool of users so that
    per-user queries return several rows. For a ``table`` keyed differently, key
    attributes are converted to the table's types (a string ``transactionId`` is a
    UUID) and key attributes a transaction does not have get unique values.
    """
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    now = now or datetime.now(timezone.utc)
    pool = users or max(5, count // 20)
    accounts: dict[int, int] = {}
    key_types = {k.name: k.type for k in (table.keys if table else ())}
    used_ids: set[int] = set()
    for _ in range(count):
        user = rng.randint(1, pool)
        # A number, like the blog post's {"accountId": 3}: one table, one type per field.
        account = accounts.setdefault(user, rng.randrange(10**7, 10**8))
        merchant = rng.choice(_MERCHANTS)
        when = now - timedelta(seconds=rng.randrange(90 * 24 * 3600))
        amount = Decimal(rng.randrange(100, 50_000)) / 100
        if rng.random() < 0.05:
            amount = -amount  # refunds
        tx_id = rng.randrange(10**11, 10**12)
        while tx_id in used_ids:
            tx_id = rng.randrange(10**11, 10**12)
        used_ids.add(tx_id)
        description = f"{rng.choice(_ADJECTIVES).capitalize()} {rng.choice(_WHAT)} at {merchant}"
        item: Item = {
            "userId": {"N": str(user)},
            "transactionId": {"N": str(tx_id)},
            "accountId": {"N": str(account)},
            "amount": {"N": str(amount)},
            "currency": {"S": rng.choice(_CURRENCIES)},
            "merchant": {"S": merchant},
            "category": {"S": _CATEGORIES[merchant]},
            "status": {"S": rng.choice(_STATUSES)},
            "shortDescription": {"S": description},
            "createdAt": {"S": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "createdAtEpoch": {"N": str(int(when.timestamp()))},
        }
        for name, kind in key_types.items():
            current = item.get(name)
            if current is None:
                item[name] = _unique_value(kind, rng)
            elif next(iter(current)) != kind:
                item[name] = _as_key_type(name, current, kind, rng)
        yield item


def _as_key_type(name: str, value: AttributeValue, kind: str, rng: random.Random) -> AttributeValue:
    """A generated attribute converted to the table's key type, keeping it unique."""
    if name == "transactionId" and kind == "S":
        return {"S": str(uuid.UUID(int=rng.getrandbits(128), version=4))}
    if kind == "S":
        return {"S": str(next(iter(value.values())))}
    if kind == "B":
        return {"B": str(next(iter(value.values()))).encode()}
    return _unique_value("N", rng)  # a generated string attribute used as a number key


def _unique_value(kind: str, rng: random.Random) -> AttributeValue:
    bits = rng.getrandbits(63)
    if kind == "N":
        return {"N": str(bits)}
    if kind == "B":
        return {"B": bits.to_bytes(8, "big")}
    return {"S": f"{bits:016x}"}
