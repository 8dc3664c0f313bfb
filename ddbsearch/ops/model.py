"""The document model as verify and explain apply it: the one item -> document function of
:mod:`ddbsearch.core.documents`, with the key order the table's schema gives.

Kept in one place so that every check builds exactly the documents, ids and versions
the stream and the backfill build (and, where an index carries a generation's
configuration, exactly what that configuration makes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ddbsearch.core.documents import InvalidDocument, action_from_item, document_id


@dataclass(frozen=True)
class Model:
    key_names: tuple[str, ...]

    @classmethod
    def for_keys(cls, key_names: Sequence[str]) -> Model:
        return cls(tuple(key_names))

    def doc_id(self, keys: Mapping[str, Any]) -> str:
        return document_id(keys)

    def keys_of(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.key_names}

    def document(
        self, item: Mapping[str, Any], version: int = 0
    ) -> tuple[str, dict[str, Any], int | None]:
        """(id, document, the item's own version or None) — raises InvalidDocument."""
        action = action_from_item(item, self.key_names, version)
        assert action.document is not None
        return action.doc_id, action.document, None

    def action(self, item: Mapping[str, Any], version: int) -> Any:
        """The index action that writes ``item`` at ``version`` (a repair)."""
        return action_from_item(item, self.key_names, version)

    @property
    def configuration(self) -> str:
        """The include/exclude configuration, in words (for explain)."""
        return "no include/exclude configuration: every attribute is indexed"

    def excluded(self, item: Mapping[str, Any]) -> list[str]:
        """Top-level attributes of ``item`` the configuration leaves out of its document."""
        return []


__all__ = ["InvalidDocument", "Model"]
