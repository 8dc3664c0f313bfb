# Least privilege: read this table's stream, write this stack's index (and its
# generations, aliases and template) on this domain, send to this queue, log to
# this log group. Nothing else, and no "*" resource.

locals {
  # What the handler sends, and nothing more. The domain's access policy grants
  # the same (output domain_grants). The index is an alias of its generations
  # <index>-NNNNNN (six digits; the alias <index>-building marks one being
  # built, see core/lifecycle.py). In IAM "*" matches any string, commas and
  # slashes included ("<index>-*" would match "<index>-x,other-index"), so the
  # index expressions use "?" (one character) and "*" only after a "/".
  generation  = "${var.index_name}-??????"
  index_paths = [var.index_name, local.generation]
  # The handler reads the live generations with one multi-target GET.
  live_read        = "${var.index_name},${var.index_name}-building"
  kms_policy_count = var.dlq_kms_key_arn == null && length(var.kms_decrypt_key_arns) == 0 ? 0 : 1
  domain_grants = [
    {
      # Cold start: HEAD the index (or alias), create it or a generation, read it.
      sid     = "OwnIndices"
      actions = ["es:ESHttpHead", "es:ESHttpGet", "es:ESHttpPut"]
      paths   = concat(local.index_paths, [local.live_read])
    },
    {
      sid     = "OwnIndexTemplate"
      actions = ["es:ESHttpGet", "es:ESHttpPut"]
      paths   = ["_index_template/ddbsearch-${var.index_name}"]
    },
    {
      # Bulks go to the index path, never to /_bulk.
      sid     = "BulkToOwnIndices"
      actions = ["es:ESHttpPost"]
      paths   = [for index in local.index_paths : "${index}/_bulk"]
    },
    {
      # Generations behind the alias: read and swap it atomically.
      sid     = "OwnAliases"
      actions = ["es:ESHttpGet", "es:ESHttpPost"]
      paths   = concat(["_aliases"], [for index in local.index_paths : "${index}/_alias*"])
    },
  ]
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "LambdaAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.function_name}-role"
  description        = "Execution role of the ddbsearch indexer ${var.function_name}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  statement {
    sid    = "ReadTableStream"
    effect = "Allow"
    actions = [
      "dynamodb:DescribeStream",
      "dynamodb:GetRecords",
      "dynamodb:GetShardIterator",
    ]
    resources = [var.stream_arn]
  }

  # ListStreams is checked by Lambda when the mapping is created. It accepts a
  # stream resource, so it is scoped to this table's streams (AWS's own
  # example policy for Lambda + DynamoDB Streams does the same) instead of "*".
  statement {
    sid       = "ListTableStreams"
    effect    = "Allow"
    actions   = ["dynamodb:ListStreams"]
    resources = ["${var.table_arn}/stream/*"]
  }

  statement {
    sid       = "DeadLetter"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  statement {
    sid       = "OwnLogGroup"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "${var.function_name}-least-privilege"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

# Exactly the requests the handler sends, on the stack's own index paths
# (local.domain_grants, which the domain's access policy grants too). A policy
# of its own: it depends only on the domain ARN and the index name, so the plan
# shows it in full.
data "aws_iam_policy_document" "domain" {
  dynamic "statement" {
    for_each = local.domain_grants
    content {
      sid       = statement.value.sid
      effect    = "Allow"
      actions   = statement.value.actions
      resources = [for path in statement.value.paths : "${var.domain_arn}/${path}"]
    }
  }
}

# Customer managed keys: a policy of its own, known at plan time.
data "aws_iam_policy_document" "kms" {
  count = local.kms_policy_count

  # A customer managed key on the queue: SQS asks KMS for a data key on every
  # send (the handler's and the event source mapping's on-failure destination,
  # both with this role), and only through SQS in this Region.
  dynamic "statement" {
    for_each = var.dlq_kms_key_arn == null ? [] : [var.dlq_kms_key_arn]
    content {
      sid       = "DeadLetterKey"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sqs.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.kms_decrypt_key_arns
    content {
      sid       = "Decrypt${statement.key}"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "kms" {
  count = local.kms_policy_count

  name   = "${var.function_name}-kms"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.kms[0].json
}

resource "aws_iam_role_policy" "domain" {
  name   = "${var.function_name}-search-domain"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.domain.json
}

# Network interfaces for a function inside a VPC: EC2 does not support
# resource-level permissions on these actions, so this AWS managed policy
# (which uses "*") is attached only when the operator asks for VPC placement.
resource "aws_iam_role_policy_attachment" "vpc" {
  count = var.vpc == null ? 0 : 1

  role       = aws_iam_role.this.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy_attachment" "xray" {
  count = var.tracing_enabled ? 1 : 0

  role       = aws_iam_role.this.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
