"""The local Lambda runtime's child process: imports the handler and serves invocations.

Run as ``python -I -S _bootstrap.py TASK_ROOT RUNTIME_SITE`` by
:mod:`ddbsearch.local.runtime`. Only the standard library is importable when
this starts (``-S``: no site-packages); it then puts the extracted function
code (TASK_ROOT, like ``/var/task``) and the runtime site (the packages the AWS
Lambda Python runtime ships: boto3, botocore, ...) on ``sys.path``, so code the
zip forgot to bundle fails to import here exactly as it would on AWS.

Protocol on stdin/stdout, one JSON document per line:
  child -> parent  {"ready": true, "init_error": null | {...}}
  parent -> child  {"id": ..., "event": {...}, "deadline_ms": ..., "request_id": ...}
  child -> parent  {"id": ..., "result": ...}
                or {"id": ..., "error": {errorType, errorMessage, stackTrace}}
Anything the handler prints goes to stderr (the function log), never to the protocol.
"""

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any


class LambdaContext:
    """The subset of the AWS Lambda Python context object that handlers use."""

    def __init__(self, request: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self.aws_request_id = request["request_id"]
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.invoked_function_arn = request.get("function_arn", "")
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline_ms = request["deadline_ms"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(type(exc), exc, exc.__traceback__),
    }


def main() -> None:
    task_root, runtime_site = sys.argv[1], sys.argv[2]
    sys.path[:0] = [task_root, runtime_site]
    os.chdir(task_root)
    # Keep the real stdout for the protocol; everything else printed goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    module_name, _, func_name = os.environ["_HANDLER"].rpartition(".")
    handler: Callable[[Any, LambdaContext], Any] | None = None
    init_error: dict[str, Any] | None = None
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
    except ImportError as exc:
        init_error = _error(exc, "Runtime.ImportModuleError")
        init_error["errorMessage"] = f"Unable to import module '{module_name}': {exc}"
    except Exception as exc:
        init_error = _error(exc)
    if init_error:
        sys.stderr.write("INIT_ERROR " + json.dumps(init_error["errorMessage"]) + "\n")
    proto.write(json.dumps({"ready": True, "init_error": init_error}) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        reply: dict[str, Any] = {"id": request["id"]}
        sys.stderr.write(f"START RequestId: {request['request_id']}\n")
        if init_error is not None or handler is None:
            reply["error"] = init_error
        else:
            try:
                result = handler(request["event"], LambdaContext(request, os.environ))
                json.dumps(result)  # a result Lambda cannot serialize is an error there too
                reply["result"] = result
            except Exception as exc:
                reply["error"] = _error(exc)
        sys.stderr.write(f"END RequestId: {request['request_id']}\n")
        sys.stderr.flush()
        proto.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
