"""On-disk, hash-partitioned fingerprints of both sides of a comparison.

``verify`` must compare tables and indexes of any size in bounded memory. Each side
writes one small record per document, ``(id, fingerprint, version)``, into one of N
partition files chosen by a hash of the document id; records are buffered in memory
up to a fixed byte budget and appended to their files when it fills, so the writer
never holds more than the budget nor more than one open file at a time. The
comparison then loads one partition of the index side into a dict (about
``total / N`` entries), streams the same partition of the table side past it, and
moves on: peak memory is one partition plus the write budget, whatever the totals.

The fingerprint of a document is a digest of its canonical JSON (sorted keys, the
index's own JSON round trip), so ``True`` and ``1`` or ``1`` and ``"1"`` differ as
they do in the index. A table record whose item the document model rejects carries
``"!" + reason`` instead of a fingerprint: it is expected to be absent from the index.

The directory is created 0700 and its files 0600; :meth:`PartitionStore.close`
removes it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ddbsearch.files import ensure_dir

Side = Literal["table", "index"]
Kind = Literal["missing", "orphan", "stale", "older", "unindexable"]

# One partition should hold about this many records of each side: a dict of this
# size costs a few megabytes, whatever the table's size.
RECORDS_PER_PARTITION = 5_000
MIN_PARTITIONS = 16
MAX_PARTITIONS = 4096
# Bytes buffered per side before records are appended to their partition files.
DEFAULT_BUFFER_BYTES = 2 * 1024 * 1024

INVALID_PREFIX = "!"


def partition_count(estimated_records: int, *, per_partition: int = RECORDS_PER_PARTITION) -> int:
    """Partitions for about ``estimated_records`` per side (estimates may be approximate)."""
    wanted = math.ceil(max(0, estimated_records) / per_partition)
    return max(MIN_PARTITIONS, min(MAX_PARTITIONS, wanted))


def canonical(document: Any) -> str:
    """A document as the index stores and returns it, as one comparable text."""
    return json.dumps(
        json.loads(json.dumps(document, ensure_ascii=False)),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def fingerprint(document: Any) -> str:
    """A short digest of the canonical document (128 bits: collisions are not a concern)."""
    return hashlib.blake2b(canonical(document).encode("utf-8"), digest_size=16).hexdigest()


def invalid_marker(reason: str) -> str:
    return INVALID_PREFIX + reason


@dataclass(frozen=True, slots=True)
class Candidate:
    """One difference found between the two sides (before it is confirmed)."""

    kind: Kind
    doc_id: str
    table_fingerprint: str | None  # None: no item; "!reason": the model rejects the item
    index_fingerprint: str | None  # None: no document
    table_version: int | None
    index_version: int | None
    keys: dict[str, Any] | None = None  # the item's key (encoded, see ops/keys.py) if known

    def to_json(self) -> list[Any]:
        return [
            self.kind,
            self.doc_id,
            self.table_fingerprint,
            self.index_fingerprint,
            self.table_version,
            self.index_version,
            self.keys,
        ]

    @classmethod
    def from_json(cls, row: list[Any]) -> Candidate:
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def classify(  # noqa: PLR0911 - one return per kind of difference
    doc_id: str,
    table: tuple[str, int | None] | None,
    index: tuple[str, int | None] | None,
    keys: dict[str, Any] | None = None,
) -> Candidate | None:
    """The difference between one id's table record and index record, or None if they agree.

    ``table``/``index`` are ``(fingerprint, version)`` or None when that side has no
    record. A version of None means unknown; versions are compared only when both
    are known.
    """
    t_fp, t_ver = table if table is not None else (None, None)
    i_fp, i_ver = index if index is not None else (None, None)
    if t_fp is None and i_fp is None:
        return None
    if t_fp is None:
        return Candidate("orphan", doc_id, None, i_fp, None, i_ver, keys)
    if t_fp.startswith(INVALID_PREFIX):
        # The model makes no document of this item: any document is stale, none is expected
        # (the item is reported so the operator can fix it: it is not searchable).
        kind: Kind = "unindexable" if i_fp is None else "stale"
        return Candidate(kind, doc_id, t_fp, i_fp, t_ver, i_ver, keys)
    if i_fp is None:
        return Candidate("missing", doc_id, t_fp, None, t_ver, None, keys)
    older = t_ver is not None and i_ver is not None and i_ver < t_ver
    if older:
        return Candidate("older", doc_id, t_fp, i_fp, t_ver, i_ver, keys)
    if t_fp != i_fp:
        return Candidate("stale", doc_id, t_fp, i_fp, t_ver, i_ver, keys)
    return None


class _SideWriter:
    """Buffers one side's records and appends them to its partition files (thread-safe)."""

    def __init__(self, directory: Path, partitions: int, buffer_bytes: int) -> None:
        self.directory = directory
        self.partitions = partitions
        self.buffer_bytes = buffer_bytes
        self.records = 0
        self._buffers: list[list[str]] = [[] for _ in range(partitions)]
        # Plain strings made once: building Paths on every flush grows pathlib's caches.
        self._paths = [os.path.join(directory, f"{p:04d}.jsonl") for p in range(partitions)]
        self._buffered = 0
        self._lock = threading.Lock()

    def path(self, partition: int) -> str:
        return self._paths[partition]

    def add(self, doc_id: str, fp: str, version: int | None, keys: dict[str, Any] | None) -> None:
        row: list[Any] = [doc_id, fp, version] if keys is None else [doc_id, fp, version, keys]
        line = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
        p = zlib.crc32(doc_id.encode("utf-8")) % self.partitions
        with self._lock:
            self._buffers[p].append(line)
            self._buffered += len(line) + 1
            self.records += 1
            if self._buffered >= self.buffer_bytes:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        for p, lines in enumerate(self._buffers):
            if not lines:
                continue
            fd = os.open(self.path(p), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as out:
                out.write("\n".join(lines))
                out.write("\n")
            self._buffers[p] = []
        self._buffered = 0

    def read(self, partition: int) -> Iterator[list[Any]]:
        """Rows ``[id, fingerprint, version]`` (+ ``keys`` on the table side)."""
        try:
            handle = open(self.path(partition), encoding="utf-8")  # noqa: SIM115
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                yield json.loads(line)


class PartitionStore:
    """Both sides' records, partitioned by document id, in a private temporary directory."""

    def __init__(
        self,
        parent: Path,
        partitions: int,
        *,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be positive")
        ensure_dir(parent)
        self.directory = Path(tempfile.mkdtemp(prefix="verify-", dir=parent))  # 0700
        self.partitions = partitions
        sides: dict[Side, _SideWriter] = {}
        for side in ("table", "index"):
            (self.directory / side).mkdir(mode=0o700)
            sides[side] = _SideWriter(self.directory / side, partitions, buffer_bytes // 2)
        self._sides = sides

    def add(
        self,
        side: Side,
        doc_id: str,
        fp: str,
        version: int | None,
        keys: dict[str, Any] | None = None,
    ) -> None:
        """Record one document (index side) or item (table side, with its encoded key)."""
        self._sides[side].add(doc_id, fp, version, keys)

    def records(self, side: Side) -> int:
        return self._sides[side].records

    def finish(self) -> None:
        """Write out what is still buffered (call once both sides are read)."""
        for writer in self._sides.values():
            writer.flush()

    def compare(self) -> Iterator[Candidate]:
        """Every difference, partition by partition (ids sorted within a partition)."""
        for p in range(self.partitions):
            index: dict[str, tuple[str, int | None]] = {
                row[0]: (row[1], row[2]) for row in self._sides["index"].read(p)
            }
            found: list[Candidate] = []
            for row in self._sides["table"].read(p):
                doc_id = row[0]
                keys = row[3] if len(row) > 3 else None
                diff = classify(doc_id, (row[1], row[2]), index.pop(doc_id, None), keys)
                if diff is not None:
                    found.append(diff)
            for doc_id, record in index.items():
                diff = classify(doc_id, None, record)
                if diff is not None:
                    found.append(diff)
            del index
            found.sort(key=lambda c: c.doc_id)
            yield from found

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PartitionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
