"""The local stack: the whole pipeline on one machine, no AWS account needed.

Public entry points (see each module for details):

* :func:`deploy_local` / :func:`destroy_local` - ``deploy --local`` / ``destroy --local``;
* :func:`start_stack`, :func:`stop_stack`, :func:`running_stack`, :func:`deploy_table`
  - the same with an explicit state directory, for tests, benchmarks and ``demo``;
* :class:`~ddbsearch.local.worker.StreamWorker` - the event source mapping, usable in-process;
* :class:`~ddbsearch.local.runtime.LocalFunction` - the Lambda runtime that runs the zip.
"""

from ddbsearch.local.stack import (
    LocalStack,
    deploy_local,
    deploy_table,
    destroy_local,
    running_stack,
    start_stack,
    stop_stack,
    wait_until_idle,
)

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
