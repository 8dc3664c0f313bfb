"""AWS Lambda entry point of the ddbsearch indexer (``handler.handler``).

Thin on purpose: DynamoDB stream event in -> ``ddbsearch.core.stream`` ->
``{"batchItemFailures": [...]}`` out. Configuration comes from the environment
(``OPENSEARCH_ENDPOINT``, ``INDEX_NAME``, ``AWS_REGION``, optional ``DLQ_URL``);
it is read once per execution environment, when the module is loaded.
``INDEX_NAME`` names the index's alias: the handler writes every generation the
alias (and the building alias of a reindex) points to, and learns them from the
domain, never from a redeploy (see docs/document-model.md, "Generations").
"""

from __future__ import annotations

from typing import Any

from ddbsearch.core.stream import Indexer

_indexer = Indexer.from_environment()


def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    return _indexer.handle(event, context)


def load_file(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Loader entry point (``handler.load_file``): one DynamoDB export data file, or the
    next part of it, into the index; the Distributed Map (or the local map runner) calls it."""
    from ddbsearch.core.export import load_file as _load_file

    return _load_file(_indexer, event, context)
