# The indexer: a Lambda function fed by the table's stream through an event
# source mapping, with a dead-letter queue for what cannot be indexed and a log
# group of its own.

locals {
  log_group_name = "/aws/lambda/${var.function_name}"
}

resource "aws_sqs_queue" "dlq" {
  name                      = "${var.function_name}-dlq"
  message_retention_seconds = 1209600 # 14 days, the SQS maximum: time to look and redrive
  sqs_managed_sse_enabled   = var.dlq_kms_key_arn == null ? true : null
  kms_master_key_id         = var.dlq_kms_key_arn
  tags                      = var.tags
}

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:KMS encryption is opt-in through log_kms_key_arn; CloudWatch Logs encrypts every log group at rest with a service key by default.
  #checkov:skip=CKV_AWS_338:Retention is an operator choice (log_retention_days); the indexer logs counts and timings, a year of them costs more than it tells.
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Only the event source mapping invokes the function, synchronously; failed batches go to the mapping's on-failure destination (the same SQS queue), and a function DLQ applies to asynchronous invocations only.
  #checkov:skip=CKV_AWS_117:VPC placement is opt-in (variable vpc) and follows the domain; the function needs no VPC to reach a public, IAM-protected domain.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is opt-in (reserved_concurrent_executions); the parallelization factor and the shard count already bound concurrency, and new accounts cannot reserve any.
  #checkov:skip=CKV_AWS_173:The environment holds no secrets (endpoint, index name, queue URL); Lambda encrypts it at rest with an AWS managed key; a customer managed key is opt-in through function_kms_key_arn.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the operator owns; the zip is built reproducibly by 'ddbsearch package' and its hash pinned in source_code_hash.
  function_name = var.function_name
  description   = "ddbsearch indexer: DynamoDB stream of ${var.table_name} -> OpenSearch index ${var.index_name}"
  role          = aws_iam_role.this.arn

  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  handler          = "handler.handler"
  runtime          = "python3.12"
  architectures    = ["arm64"]
  timeout          = var.timeout_seconds
  memory_size      = var.memory_mb
  kms_key_arn      = var.kms_key_arn

  reserved_concurrent_executions = var.reserved_concurrent_executions

  environment {
    variables = {
      OPENSEARCH_ENDPOINT = var.opensearch_endpoint
      INDEX_NAME          = var.index_name
      DLQ_URL             = aws_sqs_queue.dlq.url
    }
  }

  # No logging_config: the log group above has Lambda's default name, so the function
  # logs there (depends_on orders it first) with the default text format.

  tracing_config {
    mode = var.tracing_enabled ? "Active" : "PassThrough"
  }

  dynamic "vpc_config" {
    for_each = var.vpc == null ? [] : [var.vpc]
    content {
      subnet_ids         = vpc_config.value.subnet_ids
      security_group_ids = vpc_config.value.security_group_ids
    }
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this, aws_iam_role_policy.domain, aws_iam_role_policy.kms, aws_cloudwatch_log_group.function]
}

resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn = var.stream_arn
  function_name    = aws_lambda_function.this.arn

  # LATEST can miss writes made while the mapping is being created.
  starting_position = "TRIM_HORIZON"

  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  parallelization_factor             = var.parallelization_factor

  # The handler reports the first record it could not index; Lambda retries
  # from there instead of replaying the whole batch.
  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = var.bisect_on_error_enabled
  maximum_retry_attempts         = var.maximum_retry_attempts
  maximum_record_age_in_seconds  = var.maximum_record_age_in_seconds

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.dlq.arn
    }
  }

  depends_on = [aws_iam_role_policy.this, aws_iam_role_policy.kms]
}
