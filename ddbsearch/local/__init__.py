"""The local stack: the whole pipeline on one machine, no AWS account needed.

Where things are:

* :mod:`~ddbsearch.local.deploy` - :func:`deploy_local` / :func:`destroy_local`
  (``deploy --local`` / ``destroy --local``) and :func:`deploy_table` for a stack
  with an explicit state directory (tests, benchmarks, ``demo``);
* :mod:`~ddbsearch.local.stack` - start, find and stop the supervisor;
* :mod:`~ddbsearch.local.state` - the stack's files, each with one reader and writer;
* :mod:`~ddbsearch.local.processes` - pid and process-group plumbing;
* :mod:`~ddbsearch.local.supervisor` - the detached process that runs it all;
* :mod:`~ddbsearch.local.worker` - the event source mapping (shards, polling), with its
  retry/bisect policy in :mod:`~ddbsearch.local.policy`;
* :mod:`~ddbsearch.local.runtime` - the Lambda runtime that runs the zip;
* :mod:`~ddbsearch.local.emulators` - moto server and osmem-server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Imported on first use (PEP 562): `ddbsearch search` reads the stack's state file
# (ddbsearch.local.state) and must not pay for deploy's imports (boto3, the worker).
_EXPORTS = {
    "deploy_local": "ddbsearch.local.deploy",
    "deploy_table": "ddbsearch.local.deploy",
    "destroy_local": "ddbsearch.local.deploy",
    "wait_until_idle": "ddbsearch.local.deploy",
    "LocalStack": "ddbsearch.local.stack",
    "running_stack": "ddbsearch.local.stack",
    "start_stack": "ddbsearch.local.stack",
    "stop_stack": "ddbsearch.local.stack",
}

if TYPE_CHECKING:
    from ddbsearch.local.deploy import deploy_local, deploy_table, destroy_local, wait_until_idle
    from ddbsearch.local.stack import LocalStack, running_stack, start_stack, stop_stack

__all__ = [
    "LocalStack",
    "deploy_local",
    "deploy_table",
    "destroy_local",
    "running_stack",
    "start_stack",
    "stop_stack",
    "wait_until_idle",
]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ddbsearch.local' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
