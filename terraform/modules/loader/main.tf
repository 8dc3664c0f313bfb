# The export loader: loads a DynamoDB table export (ExportTableToPointInTime, a set
# of gzip DYNAMODB_JSON files in S3) into the index, with the work done by AWS:
# a Step Functions Distributed Map over the export's manifest-files.json, each
# child invoking the indexer zip's handler.load_file (the same document model,
# ids and versions as the stream) with bounded concurrency, backoff on throttling,
# a tolerated-failure threshold and a result written to S3. Nothing runs, and
# nothing is paid for, between loads.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  state_machine_name = "${var.name}-export-load"
  state_machine_arn  = "arn:${data.aws_partition.current.partition}:states:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:stateMachine:${local.state_machine_name}"
  execution_arns     = "arn:${data.aws_partition.current.partition}:states:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:execution:${local.state_machine_name}/*"
  function_name      = "${var.name}-loader"
  exports_prefix     = "exports/"
  results_prefix     = "load-results/"
}

# --------------------------------------------------------------------------- bucket

resource "aws_s3_bucket" "exports" {
  #checkov:skip=CKV_AWS_18:Access logging needs a log bucket the operator owns; the bucket holds table exports that expire after export_retention_days, and CloudTrail data events can be enabled account-wide.
  #checkov:skip=CKV_AWS_21:Versioning would keep every expired export; the objects are reproducible snapshots of the table (a new export recreates them) and expire after export_retention_days.
  #checkov:skip=CKV_AWS_144:Cross-region replication would copy table snapshots to a second region for no purpose: an export is transient input to one load and can be made again.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to new objects: the CLI starts the load itself once DescribeExport reports COMPLETED.
  bucket_prefix = substr("${var.name}-exports-", 0, 37)
  force_destroy = true # only exports and load results live here, all reproducible
  tags          = var.tags
}

resource "aws_s3_bucket_server_side_encryption_configuration" "exports" {
  bucket = aws_s3_bucket.exports.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn # null: the AWS managed key aws/s3
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "exports" {
  bucket                  = aws_s3_bucket.exports.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "exports" {
  bucket = aws_s3_bucket.exports.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "exports" {
  bucket = aws_s3_bucket.exports.id

  # Exports and ResultWriter upload in parts; an interrupted upload is not kept.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "expire-exports"
    status = "Enabled"
    filter {
      prefix = local.exports_prefix
    }
    expiration {
      days = var.export_retention_days
    }
  }

  rule {
    id     = "expire-load-results"
    status = "Enabled"
    filter {
      prefix = local.results_prefix
    }
    expiration {
      days = var.export_retention_days
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  # The one "*" principal: a Deny, for requests that do not use TLS.
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.exports.arn, "${aws_s3_bucket.exports.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "exports" {
  bucket = aws_s3_bucket.exports.id
  policy = data.aws_iam_policy_document.bucket.json

  depends_on = [aws_s3_bucket_public_access_block.exports]
}

# --------------------------------------------------------------------------- loader function

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:KMS encryption is opt-in through log_kms_key_arn; CloudWatch Logs encrypts every log group at rest with a service key by default.
  #checkov:skip=CKV_AWS_338:Retention is an operator choice (log_retention_days); the loader logs counts and timings per file, a year of them costs more than it tells.
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Only the state machine invokes the loader, synchronously, and retries it itself; a function DLQ applies to asynchronous invocations only. Rows that cannot be indexed go to the indexer's dead-letter queue.
  #checkov:skip=CKV_AWS_117:VPC placement is opt-in (variable vpc) and follows the domain; the function needs no VPC to reach a public, IAM-protected domain and S3.
  #checkov:skip=CKV_AWS_115:Concurrency is bounded by the Distributed Map's MaxConcurrency (export_load_max_concurrency); reserving it would take capacity from the account while no load runs.
  #checkov:skip=CKV_AWS_173:The environment holds no secrets (endpoint, index name, queue URL); Lambda encrypts it at rest with an AWS managed key; a customer managed key is opt-in through function_kms_key_arn.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile the operator owns; the zip is built reproducibly by 'ddbsearch package' and its hash pinned in source_code_hash.
  function_name = local.function_name
  description   = "ddbsearch export loader: DynamoDB export files of ${var.table_name} -> OpenSearch index ${var.index_name}"
  role          = aws_iam_role.function.arn

  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  handler          = "handler.load_file"
  runtime          = "python3.12"
  architectures    = ["arm64"]
  timeout          = var.timeout_seconds
  memory_size      = var.memory_mb
  kms_key_arn      = var.function_kms_key_arn

  environment {
    variables = {
      OPENSEARCH_ENDPOINT = var.opensearch_endpoint
      INDEX_NAME          = var.index_name
      DLQ_URL             = var.dlq_url
    }
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function.name
  }

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

  depends_on = [aws_iam_role_policy.function, aws_cloudwatch_log_group.function]
}

# --------------------------------------------------------------------------- state machine

resource "aws_cloudwatch_log_group" "state_machine" {
  #checkov:skip=CKV_AWS_158:KMS encryption is opt-in through log_kms_key_arn; CloudWatch Logs encrypts every log group at rest with a service key by default.
  #checkov:skip=CKV_AWS_338:Retention is an operator choice (log_retention_days); the state machine logs errors only, without execution data.
  name              = "/aws/vendedlogs/states/${local.state_machine_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_sfn_state_machine" "this" {
  #checkov:skip=CKV_AWS_284:X-Ray tracing is opt-in (tracing_enabled), as for the indexer; the map run's own counters and the ResultWriter output in S3 say what each file did.
  name     = local.state_machine_name
  role_arn = aws_iam_role.state_machine.arn
  type     = "STANDARD"

  definition = templatefile("${path.module}/state_machine.asl.json", {
    partition                    = data.aws_partition.current.partition
    function_arn                 = aws_lambda_function.this.arn
    bucket                       = aws_s3_bucket.exports.id
    max_concurrency              = var.max_concurrency
    tolerated_failure_percentage = var.tolerated_failure_percentage
  })

  logging_configuration {
    log_destination = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    # Execution data is file keys, key attribute names, versions and counts: never items.
    include_execution_data = true
    level                  = "ERROR"
  }

  tracing_configuration {
    enabled = var.tracing_enabled
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.state_machine]
}
