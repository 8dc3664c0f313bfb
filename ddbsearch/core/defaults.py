"""Pipeline defaults shared by the Terraform modules (terraform/variables.tf repeats
them; a test keeps both in step) and the local stream worker, so that the local
stack batches, retries and gives up exactly like the deployed event source mapping.
"""

from __future__ import annotations

# Event source mapping. AWS's generic default batch size (100) costs one _bulk
# request per 100 records; with a zero batching window a larger batch adds no
# latency (Lambda still invokes as soon as records are there) and Lambda itself
# caps an invocation payload at 6 MB, so 1,000 records per batch is safe.
BATCH_SIZE = 1000
MAXIMUM_BATCHING_WINDOW_SECONDS = 0
PARALLELIZATION_FACTOR = 1
STARTING_POSITION = "TRIM_HORIZON"  # LATEST can miss writes made while the mapping is created
BISECT_BATCH_ON_FUNCTION_ERROR = True
# Bounded, but generous: transient search-domain outages are retried (the handler
# also backs off inside each invocation) for up to six hours before records are
# handed to the on-failure destination.
MAXIMUM_RETRY_ATTEMPTS = 100
MAXIMUM_RECORD_AGE_SECONDS = 21600
LAMBDA_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024

# Function.
FUNCTION_TIMEOUT_SECONDS = 120
FUNCTION_MEMORY_MB = 512

# Indexing.
BULK_MAX_BYTES = 5 * 1024 * 1024  # well under the 10 MiB request limit of the smallest domains

__all__ = [
    "BATCH_SIZE",
    "BISECT_BATCH_ON_FUNCTION_ERROR",
    "BULK_MAX_BYTES",
    "FUNCTION_MEMORY_MB",
    "FUNCTION_TIMEOUT_SECONDS",
    "LAMBDA_PAYLOAD_LIMIT_BYTES",
    "MAXIMUM_BATCHING_WINDOW_SECONDS",
    "MAXIMUM_RECORD_AGE_SECONDS",
    "MAXIMUM_RETRY_ATTEMPTS",
    "PARALLELIZATION_FACTOR",
    "STARTING_POSITION",
]
