"""The index ddbsearch owns: its template (settings + mapping) and idempotent creation.

The mapping must take every value DynamoDB can store without a mapping conflict:
- every number maps to ``double`` (integers and decimals can mix in one
  attribute, and DynamoDB's range 1E-130 .. 1E+125 overflows the ``float`` that
  OpenSearch's dynamic mapping would pick for decimals), with an exact ``long``
  sub-field (``amount.long``) that holds the integers of signed 64-bit range and
  skips every other value (``coerce: false`` + ``ignore_malformed``), so integers
  filter and sort exactly beyond 2^53 without a long-versus-double conflict;
- every string maps to ``text`` (searchable) with a ``keyword`` sub-field
  (filters, sorting, aggregations); binary arrives as base64 text;
- no date or numeric detection, so "2024-01-01" or "42" in a string attribute
  does not fix the field's type for every later item;
- object depth raised to what DynamoDB allows (32 levels).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ddbsearch.core.documents import MAX_DEPTH
from ddbsearch.core.errors import DdbsearchError
from ddbsearch.core.transport import SearchTransport

if TYPE_CHECKING:
    from ddbsearch.core.generations import GenerationConfig

TEMPLATE_PREFIX = "ddbsearch-"


class IndexSetupError(DdbsearchError):
    """The domain answered, but not with success, while the index was being set up."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status == 429 or self.status >= 500


KEYWORD_IGNORE_ABOVE = 256
EXACT_INTEGER_SUBFIELD = "long"

# Numbers, whatever JSON kind the first value has: the same mapping, so an
# attribute mixing integers and decimals never conflicts.
NUMBER_MAPPING: dict[str, Any] = {
    "type": "double",
    "fields": {EXACT_INTEGER_SUBFIELD: {"type": "long", "coerce": False, "ignore_malformed": True}},
}


SLOW_LOG_THRESHOLDS = {
    "index.search.slowlog.threshold.query.warn": "2s",
    "index.search.slowlog.threshold.query.info": "1s",
    "index.search.slowlog.threshold.fetch.warn": "1s",
    "index.indexing.slowlog.threshold.index.warn": "5s",
    "index.indexing.slowlog.threshold.index.info": "2s",
}


def _number() -> dict[str, Any]:
    return copy.deepcopy(NUMBER_MAPPING)


def index_body() -> dict[str, Any]:
    return {
        "settings": {
            "index.mapping.depth.limit": MAX_DEPTH,
            "index.mapping.total_fields.limit": 1000,
            # A deleted document's version is remembered this long, so that a
            # late, older write for it is rejected instead of resurrecting it.
            "index.gc_deletes": "1h",
            # One node (the smallest domain, the local emulator) or many.
            "index.auto_expand_replicas": "0-1",
            # Slow logs: the domain publishes the slow-log groups (terraform
            # modules/search), but OpenSearch writes them only for indices whose
            # settings set thresholds, so every generation sets them.
            **SLOW_LOG_THRESHOLDS,
        },
        "mappings": {
            "date_detection": False,
            "numeric_detection": False,
            "dynamic_templates": [
                {"integers": {"match_mapping_type": "long", "mapping": _number()}},
                {"decimals": {"match_mapping_type": "double", "mapping": _number()}},
                {
                    "strings": {
                        "match_mapping_type": "string",
                        "mapping": {
                            "type": "text",
                            "fields": {
                                "keyword": {
                                    "type": "keyword",
                                    "ignore_above": KEYWORD_IGNORE_ABOVE,
                                }
                            },
                        },
                    }
                },
            ],
        },
    }


def index_template(index: str) -> dict[str, Any]:
    body = index_body()
    return {
        "index_patterns": [index],
        "priority": 200,
        "template": body,
        "_meta": {"managed_by": "ddbsearch"},
    }


def ensure_index(
    transport: SearchTransport,
    index: str,
    *,
    update_template: bool = False,
    config: GenerationConfig | None = None,
) -> bool:
    """Make sure the index exists; True if this call created it.

    A fresh stack (no alias, no index of that name) gets its first generation,
    ``<index>-000001`` behind the alias ``<index>``, built with ``config`` (default:
    the original document model). An existing alias or concrete index is kept as
    it is. Idempotent and safe to race: the handler calls it on a cold start,
    deploy with ``update_template=True`` to refresh the index template (which
    applies to a concrete index only when it is recreated).
    """
    from ddbsearch.core.lifecycle import GenerationError, create_first_generation

    head = transport.request("HEAD", f"/{index}")
    if head.status == 200 and not update_template:
        return False
    put = transport.json("PUT", f"/_index_template/{TEMPLATE_PREFIX}{index}", index_template(index))
    if put.status >= 300:
        raise IndexSetupError(
            f"could not store the index template for {index!r} ({put.status})", put.status
        )
    if head.status == 200:
        return False
    try:
        return create_first_generation(transport, index, config)
    except GenerationError as exc:
        raise IndexSetupError(exc.message, exc.status) from None
