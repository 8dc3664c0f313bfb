"""The document model as verify and explain apply it: the one item -> document function of
:mod:`ddbsearch.core.documents`, with the serving generation's configuration.

An index made by ddbsearch is an alias over generations, each of which stores the
configuration it was built with (key schema and id scheme, include/exclude, version
attribute; :mod:`ddbsearch.core.generations`). Checks must build exactly the documents,
ids and versions that generation expects, so :meth:`Model.load` reads the serving
generation and everything here goes through its configuration (none for a legacy
index: the plain model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ddbsearch.core.documents import (
    Action,
    InvalidDocument,
    action_from_item,
    document_id,
    to_document,
)
from ddbsearch.core.generations import GenerationConfig
from ddbsearch.core.transport import SearchTransport


@dataclass(frozen=True)
class Model:
    key_names: tuple[str, ...]  # partition key first
    config: GenerationConfig | None = None  # the serving generation's; None: legacy / none
    serving: str | None = None  # the concrete index behind the read alias, if known

    @classmethod
    def for_keys(cls, key_names: Sequence[str], config: GenerationConfig | None = None) -> Model:
        return cls(tuple(key_names), config)

    @classmethod
    def load(cls, transport: SearchTransport, index: str, key_names: Sequence[str]) -> Model:
        """The model of ``index``'s serving generation (the plain model if it has none)."""
        from ddbsearch.core.lifecycle import GenerationError, live_generations

        try:
            gens = live_generations(transport, index)
        except GenerationError:
            gens = []
        serving = next((g for g in gens if g.serving), None)
        if serving is None:
            return cls(tuple(key_names))
        return cls(tuple(key_names), serving.config, serving.name)

    def doc_id(self, keys: Mapping[str, Any]) -> str:
        return document_id(keys, self.config)

    def keys_of(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.key_names}

    def document(self, item: Mapping[str, Any]) -> tuple[str, dict[str, Any], int | None]:
        """(id, document, the item's own version if the configuration names a version
        attribute, else None). Raises InvalidDocument (MissingVersion included)."""
        action = action_from_item(item, self.key_names, 0, self.config)
        assert action.document is not None
        own = self.config is not None and self.config.version_attribute is not None
        return action.doc_id, action.document, action.version if own else None

    def action(self, item: Mapping[str, Any], version: int) -> Action:
        """The index action that writes ``item`` at ``version`` (a repair; a version
        attribute, when configured, takes precedence, as on every path)."""
        return action_from_item(item, self.key_names, version, self.config)

    @property
    def configuration(self) -> str:
        """The configuration, in words (for explain)."""
        c = self.config
        where = f" (generation {self.serving})" if self.serving else ""
        if c is None:
            return f"no include/exclude configuration: every attribute is indexed{where}"
        parts = []
        if c.include:
            parts.append("include " + ", ".join(c.include))
        if c.exclude:
            parts.append("exclude " + ", ".join(c.exclude))
        if not parts:
            parts.append("every attribute is indexed")
        if c.version_attribute:
            parts.append(f"version attribute {c.version_attribute}")
        return "; ".join(parts) + where

    def excluded(self, item: Mapping[str, Any]) -> list[str]:
        """Attribute paths of ``item`` the configuration leaves out of its document."""
        c = self.config
        if c is None or not (c.include or c.exclude):
            return []
        try:
            kept = to_document(item, c, self.key_names)
        except InvalidDocument:
            return []
        gone = sorted(name for name in item if name not in kept)
        nested = sorted(path for path in c.exclude if "." in path and path.split(".", 1)[0] in kept)
        return gone + nested


__all__ = ["InvalidDocument", "Model"]
