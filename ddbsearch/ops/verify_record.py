"""The last verify's result, kept per target for ``status`` (the one owner of that file).

``<state>/verify/<table>-<index>-<digest>.last.json`` holds when the last verify
finished, its result (equal, drift, repaired), the counts by kind and how long it
took: ids and counts only, never item contents. Written atomically, 0600.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ddbsearch.files import read_json, write_json
from ddbsearch.targets import Target, state_home

if TYPE_CHECKING:
    from ddbsearch.ops.verify import VerifyReport

RECORD_FORMAT = 1


@dataclass(frozen=True)
class VerifyRecord:
    finished_at: float
    result: str  # equal | drift | repaired
    drift: int
    counts: dict[str, int] = field(default_factory=dict)
    repaired: int = 0
    items: int = 0
    documents: int = 0
    seconds: float = 0.0

    @classmethod
    def from_report(cls, report: VerifyReport) -> VerifyRecord:
        return cls(
            finished_at=report.finished_at or time.time(),
            result=report.result,
            drift=report.drift,
            counts={k: v for k, v in report.counts.items() if v},
            repaired=report.repaired,
            items=report.items,
            documents=report.documents,
            seconds=round(report.seconds, 3),
        )

    def age_seconds(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.finished_at)


def record_path(target: Target) -> Path:
    identity = [target.kind, target.name, target.region, target.table, target.index]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
    safe = "".join(
        c if c.isalnum() or c in "-_." else "_" for c in f"{target.table}-{target.index}"
    )
    return state_home() / "verify" / f"{safe}-{digest}.last.json"


def save_last_verify(target: Target, record: VerifyRecord) -> Path:
    path = record_path(target)
    write_json(path, {"format": RECORD_FORMAT, **asdict(record)})
    return path


def load_last_verify(target: Target) -> VerifyRecord | None:
    data = read_json(record_path(target))
    if data is None or data.get("format") != RECORD_FORMAT:
        return None
    try:
        return VerifyRecord(
            finished_at=float(data["finished_at"]),
            result=str(data["result"]),
            drift=int(data["drift"]),
            counts={str(k): int(v) for k, v in dict(data.get("counts") or {}).items()},
            repaired=int(data.get("repaired", 0)),
            items=int(data.get("items", 0)),
            documents=int(data.get("documents", 0)),
            seconds=float(data.get("seconds", 0.0)),
        )
    except (KeyError, TypeError, ValueError):
        return None
