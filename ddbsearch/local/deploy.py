"""Deploying tables into the local stack: the table (with its stream), the dead-letter
queue, the index and the event source mapping, each belonging to the table it names.

``deploy --local`` calls :func:`deploy_local`, ``destroy --local`` calls
:func:`destroy_local`; :func:`deploy_table` does the same into a stack with an
explicit root (tests, benchmarks, ``demo``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddbsearch import defaults
from ddbsearch.core.stream import Settings
from ddbsearch.errors import ConfigurationError, InfraError, UnreachableError
from ddbsearch.local import state
from ddbsearch.local.processes import process_alive
from ddbsearch.local.stack import LocalStack, Progress, default_root, start_stack, stop_stack
from ddbsearch.local.state import MappingStatus
from ddbsearch.tables import TableInfo

if TYPE_CHECKING:
    from ddbsearch.ops.reindex import SchemaOptions
from ddbsearch.targets import (
    DEFAULT_TABLE,
    REFERENCE_KEYS,
    KeySpec,
    Target,
    clear_current,
    local_state_file,
    set_current,
)

MAPPING_TIMEOUT_SECONDS = 30.0
STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def _say(on_progress: Progress, message: str) -> None:
    if on_progress is not None:
        on_progress(message)


def _key_schema(keys: KeySpec) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    hash_key, range_key = keys
    parts = [(hash_key, "HASH")] + ([(range_key, "RANGE")] if range_key else [])
    for (name, kind), _role in parts:
        if not name or kind not in ("S", "N", "B"):
            raise ConfigurationError(
                f"invalid key attribute {name}:{kind} (type must be S, N or B)"
            )
    schema = [{"AttributeName": n, "KeyType": role} for (n, _t), role in parts]
    attrs = [{"AttributeName": n, "AttributeType": t} for (n, t), _role in parts]
    return schema, attrs


def ensure_table(ddb: Any, table: str, keys: KeySpec | None = None) -> TableInfo:
    """Create the table with a NEW_AND_OLD_IMAGES stream, or adopt the existing one.

    ``keys`` are for a table being created (default: the reference keys); an
    existing table keeps its own, read from DescribeTable. Keys that contradict
    an existing table are an error, not silently ignored.
    """
    try:
        desc = ddb.describe_table(TableName=table)["Table"]
    except ddb.exceptions.ResourceNotFoundException:
        schema, attrs = _key_schema(keys or REFERENCE_KEYS)
        desc = ddb.create_table(
            TableName=table,
            KeySchema=schema,
            AttributeDefinitions=attrs,
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=STREAM,
        )["TableDescription"]
    info = TableInfo.from_description(desc)
    if keys is not None:
        wanted = tuple((s["AttributeName"], s["KeyType"]) for s in _key_schema(keys)[0])
        if info.key_schema != wanted:
            raise ConfigurationError(
                f"table {table} already exists locally with a different key schema",
                hint="leave out --hash-key/--range-key to adopt it, use another --table, "
                "or 'ddbsearch destroy --local' first",
            )
    if not info.stream_enabled:
        desc = ddb.update_table(TableName=table, StreamSpecification=STREAM)["TableDescription"]
        info = TableInfo.from_description(desc)
    return info


def wait_for_mapping(
    stack: LocalStack, table: str, *, generation: str, timeout: float = MAPPING_TIMEOUT_SECONDS
) -> MappingStatus:
    """Poll until the supervisor reports this ``generation`` of the table's mapping enabled."""
    deadline = time.monotonic() + timeout
    while True:
        status = stack.mapping_status(table)
        if status is not None and status.generation == generation:
            if status.state == "Failed":
                raise InfraError(f"the local stream worker for {table} failed: {status.error}")
            if status.state == "Enabled":
                return status
        if not process_alive(stack.pid):
            raise UnreachableError("the local stack stopped while deploying", hint=str(stack.root))
        if time.monotonic() > deadline:
            raise InfraError(
                f"the local stream worker for {table} did not start in {timeout:.0f} s"
            )
        time.sleep(0.05)


def wait_until_idle(
    stack: LocalStack, table: str, *, timeout: float = MAPPING_TIMEOUT_SECONDS
) -> MappingStatus:
    """Poll until the table's stream worker has delivered every write made before this call.

    The worker reports ``caught_up_since``: nothing in flight or waiting for a
    retry, and every shard read to its end by a GetRecords sent at that time;
    once that is later than this call's start, everything written before the
    call has been handed to the function. Returns the status (counters, checkpoints).
    """
    started = time.time()
    deadline = time.monotonic() + timeout
    while True:
        status = stack.mapping_status(table)
        if status is not None and (status.caught_up_since or 0) > started:
            return status
        if not process_alive(stack.pid):
            raise UnreachableError("the local stack is not running", hint=str(stack.root))
        if time.monotonic() > deadline:
            stats = status.stats if status is not None else {}
            raise InfraError(
                f"the local stream worker for {table} did not catch up in {timeout:.0f} s"
                + (f" (last error: {stats['last_error']})" if stats.get("last_error") else "")
            )
        time.sleep(0.05)


def deploy_table(
    stack: LocalStack,
    *,
    table: str = DEFAULT_TABLE,
    keys: KeySpec | None = None,
    index: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    function_timeout_seconds: float = defaults.FUNCTION_TIMEOUT_SECONDS,
    function_environment: Mapping[str, str] | None = None,
    zip_path: Path | None = None,
    on_progress: Progress = None,
    schema: SchemaOptions | None = None,
) -> Target:
    """Create the table (with stream), the DLQ, the index and the mapping on ``stack``.

    ``keys`` are used when the table is created (default: the reference keys); an
    existing table is adopted with its own. ``mapping`` overrides
    :class:`ddbsearch.local.worker.MappingConfig` fields (``batch_size``,
    ``maximum_retry_attempts``, ...); ``zip_path`` replaces the zip ``ddbsearch
    package`` builds (tests use handlers that fail on purpose) and
    ``function_environment`` adds to (or overrides) the function's environment.
    Deploying again replaces the mapping: the worker restarts from its checkpoints.
    Returns the target; it does not make it current (see :func:`deploy_local`).
    """
    from ddbsearch.core.template import ensure_index
    from ddbsearch.core.transport import SearchTransport
    from ddbsearch.ops.reindex import first_generation_config
    from ddbsearch.packaging import build_lambda_zip

    index = index or table.lower()
    ddb, sqs = stack.client("dynamodb"), stack.client("sqs")
    _say(on_progress, f"creating table {table} with its stream")
    info = ensure_table(ddb, table, keys)
    assert info.stream_arn is not None
    _say(on_progress, "creating the dead-letter queue")
    dlq_url = str(sqs.create_queue(QueueName=f"{table}-ddbsearch-dlq")["QueueUrl"])
    _say(on_progress, f"creating index {index}")
    search = SearchTransport(stack.osmem_url, sigv4=False)
    config = first_generation_config(search, index, schema, info.key_names)
    ensure_index(search, index, config=config)
    if zip_path is None:
        _say(on_progress, "building the Lambda zip")
        zip_path = build_lambda_zip(stack.root / "function.zip")
    function_name = f"ddbsearch-{table}"[:64]
    generation = uuid.uuid4().hex
    settings = Settings(
        endpoint=stack.osmem_url, index=index, region=stack.region, dlq_url=dlq_url, sigv4=False
    )
    spec = {
        "table": table,
        "stream_arn": info.stream_arn,
        "zip_path": str(zip_path),
        "function_name": function_name,
        "timeout_seconds": function_timeout_seconds,
        "memory_mb": defaults.FUNCTION_MEMORY_MB,
        "environment": {
            **settings.to_environment(),
            "AWS_ENDPOINT_URL": stack.moto_url,
            **dict(function_environment or {}),
        },
        # One queue takes both the handler's unindexable records and the
        # mapping's discarded batches; their message shapes tell them apart.
        "on_failure_url": dlq_url,
        "settings": dict(mapping or {}),
        "generation": generation,
    }
    _say(on_progress, "starting the stream worker")
    state.write_mapping_spec(stack.root, table, spec)
    wait_for_mapping(stack, table, generation=generation)
    return Target(
        kind="local",
        name="local",
        region=stack.region,
        table=table,
        index=index,
        search_endpoint=stack.osmem_url,
        aws_endpoint=stack.moto_url,
        dlq_url=dlq_url,
        function_name=function_name,
        event_source_mapping_uuid=f"local-{table}",
        sigv4=False,
        key_names=tuple(info.key_names),
        stream_arn=info.stream_arn,
        function_log=str(stack.function_log(table)),
        root=str(stack.root),
    )


def record_target(stack: LocalStack, target: Target) -> None:
    """Record the table's target in the stack's state (what ``--local`` resolves to)."""
    if state.recorded_pid(stack.root) != stack.pid:
        raise UnreachableError("the local stack stopped while deploying", hint=str(stack.root))
    state.record_target(target, stack.root)


def deploy_local(
    *,
    table: str = DEFAULT_TABLE,
    keys: KeySpec | None = None,
    index: str | None = None,
    on_progress: Callable[[str], None] | None = None,
    schema: SchemaOptions | None = None,
) -> Target:
    """``deploy --local``: start the local stack if needed, deploy the table into it,
    and make it the current target of every other command.

    An existing table is adopted with its own keys; ``keys`` are for a new one.
    """
    stack = start_stack(on_progress=on_progress)
    target = deploy_table(
        stack, table=table, keys=keys, index=index, on_progress=on_progress, schema=schema
    )
    record_target(stack, target)
    set_current("local", "local")
    _say(on_progress, f"deployed {table} -> index {target.index} (local)")
    return target


def destroy_local(*, on_progress: Callable[[str], None] | None = None) -> bool:
    """``destroy --local``: stop the local stack and forget it; False if nothing ran."""
    root = default_root()
    stopped = stop_stack(root, on_progress=on_progress)
    local_state_file().unlink(missing_ok=True)
    clear_current("local", "local")
    return stopped
