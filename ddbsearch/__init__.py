"""ddbsearch: make a DynamoDB table searchable with OpenSearch.

The verbs, as a script uses them (each returns a report; errors are
:class:`ddbsearch.DdbsearchError` subclasses, the library never prints)::

    import ddbsearch

    target = ddbsearch.deploy(local=True, table="Books").target  # or on AWS: name=..., region=...
    ddbsearch.put(target, [{"userId": 1, "transactionId": 1, "title": "Dune"}])
    result = ddbsearch.search(target, "dune", wait=30)
    ddbsearch.destroy(local=True)

deploy, destroy
    create / remove the pipeline (table -> stream -> Lambda -> OpenSearch), locally or on AWS
plan
    what deploy would change on AWS (Terraform's plan), changing nothing
put
    write items to the table; its stream indexes them
backfill
    index the items a table already holds (parallel Scan, paced, resumable)
load_export, export_load_progress, cancel_export_load
    the same from a DynamoDB export, loaded on AWS (Step Functions) or by the local
    map runner; the load outlives the caller (``backfill --from-export``)
search
    query the index
status
    is the pipeline healthy? (table, stream, index, mapping, lag, dead-letter queue)
redrive
    re-index what the dead-letter queue holds
reindex, abort_reindex
    build the next index generation (new mapping, include/exclude, ...), swap the alias to it
verify
    compare every item with its document; ``repair=True`` fixes the drift
explain
    why one item is searchable, or why not (one verdict and its evidence)
resolve_target
    the :class:`Target` of a deployed stack (the last deploy by default)

This file also ships in the Lambda zip, so everything is imported lazily
(PEP 562): ``import ddbsearch`` loads no other module.
"""

# No imports at module level, not even typing: the Lambda's cold start pays for each.
TYPE_CHECKING = False  # mypy reads the block below as if True

__version__ = "0.1.0"

# Public name -> (module, attribute). Nothing is imported until first used.
_EXPORTS: dict[str, tuple[str, str]] = {
    # verbs
    "deploy": ("ddbsearch.ops.deploy", "deploy"),
    "destroy": ("ddbsearch.ops.deploy", "destroy"),
    "plan": ("ddbsearch.ops.deploy", "plan"),
    "put": ("ddbsearch.ops.put", "put"),
    "backfill": ("ddbsearch.ops.backfill", "run_backfill"),
    "load_export": ("ddbsearch.ops.export_load", "start_or_attach"),
    "export_load_progress": ("ddbsearch.ops.export_load", "progress"),
    "cancel_export_load": ("ddbsearch.ops.export_load", "cancel"),
    "search": ("ddbsearch.ops.search", "search"),
    "status": ("ddbsearch.ops.status", "collect_status"),
    "redrive": ("ddbsearch.ops.redrive", "redrive"),
    "reindex": ("ddbsearch.ops.reindex", "run_reindex"),
    "abort_reindex": ("ddbsearch.ops.reindex", "abort_reindex"),
    "verify": ("ddbsearch.ops.verify", "run_verify"),
    "explain": ("ddbsearch.ops.explain", "explain"),
    "resolve_target": ("ddbsearch.targets", "resolve_target"),
    # what they take
    "Target": ("ddbsearch.targets", "Target"),
    "SearchRequest": ("ddbsearch.ops.search", "SearchRequest"),
    "StackSettings": ("ddbsearch.infra.tfvars", "StackSettings"),
    "DeployEvents": ("ddbsearch.ops.deploy", "DeployEvents"),
    # what they return
    "DeployReport": ("ddbsearch.ops.deploy", "DeployReport"),
    "DestroyReport": ("ddbsearch.ops.deploy", "DestroyReport"),
    "PlanReport": ("ddbsearch.ops.deploy", "PlanReport"),
    "WriteReport": ("ddbsearch.ops.put", "WriteReport"),
    "BackfillSummary": ("ddbsearch.ops.backfill", "BackfillSummary"),
    "LoadProgress": ("ddbsearch.ops.export_load", "LoadProgress"),
    "SearchResult": ("ddbsearch.ops.search", "SearchResult"),
    "Hit": ("ddbsearch.ops.search", "Hit"),
    "StatusReport": ("ddbsearch.ops.status", "StatusReport"),
    "Check": ("ddbsearch.ops.status", "Check"),
    "RedriveReport": ("ddbsearch.ops.redrive", "RedriveReport"),
    "ReindexSummary": ("ddbsearch.ops.reindex", "ReindexSummary"),
    "ReindexEvents": ("ddbsearch.ops.reindex", "ReindexEvents"),
    "VerifyReport": ("ddbsearch.ops.verify", "VerifyReport"),
    "Difference": ("ddbsearch.ops.verify", "Difference"),
    "Explanation": ("ddbsearch.ops.explain", "Explanation"),
    # errors
    "DdbsearchError": ("ddbsearch.errors", "DdbsearchError"),
    "ExitCode": ("ddbsearch.errors", "ExitCode"),
}

__all__ = [
    "BackfillSummary", "Check", "DdbsearchError", "DeployEvents", "DeployReport",
    "DestroyReport", "Difference", "ExitCode", "Explanation", "Hit", "LoadProgress",
    "PlanReport", "RedriveReport", "ReindexEvents", "ReindexSummary", "SearchRequest",
    "SearchResult", "StackSettings", "StatusReport", "Target", "VerifyReport", "WriteReport",
    "abort_reindex", "backfill", "cancel_export_load", "deploy", "destroy", "explain",
    "export_load_progress", "load_export", "plan", "put", "redrive", "reindex",
    "resolve_target", "search", "status", "verify",
]  # fmt: skip

if TYPE_CHECKING:  # mypy and editors see the real names; at run time they stay lazy
    from ddbsearch.errors import DdbsearchError, ExitCode
    from ddbsearch.infra.tfvars import StackSettings
    from ddbsearch.ops.backfill import BackfillSummary
    from ddbsearch.ops.backfill import run_backfill as backfill
    from ddbsearch.ops.deploy import (
        DeployEvents,
        DeployReport,
        DestroyReport,
        PlanReport,
        deploy,
        destroy,
        plan,
    )
    from ddbsearch.ops.explain import Explanation, explain
    from ddbsearch.ops.export_load import LoadProgress
    from ddbsearch.ops.export_load import cancel as cancel_export_load
    from ddbsearch.ops.export_load import progress as export_load_progress
    from ddbsearch.ops.export_load import start_or_attach as load_export
    from ddbsearch.ops.put import WriteReport, put
    from ddbsearch.ops.redrive import RedriveReport, redrive
    from ddbsearch.ops.reindex import ReindexEvents, ReindexSummary, abort_reindex
    from ddbsearch.ops.reindex import run_reindex as reindex
    from ddbsearch.ops.search import Hit, SearchRequest, SearchResult, search
    from ddbsearch.ops.status import Check, StatusReport
    from ddbsearch.ops.status import collect_status as status
    from ddbsearch.ops.verify import Difference, VerifyReport
    from ddbsearch.ops.verify import run_verify as verify
    from ddbsearch.targets import Target, resolve_target


def __getattr__(name: str) -> object:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'ddbsearch' has no attribute {name!r}") from None
    from importlib import import_module

    value = getattr(import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
