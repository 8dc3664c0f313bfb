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
