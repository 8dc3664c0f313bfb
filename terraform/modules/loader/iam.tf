# Least privilege. The state machine may read the export's manifest, write its
# results, invoke the loader and run its own child executions; the loader may
# describe this table's exports, read export files, write the domain, dead-letter
# rows and log. Nothing else.

# --------------------------------------------------------------------------- loader function

data "aws_iam_policy_document" "function_assume" {
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

resource "aws_iam_role" "function" {
  name               = "${local.function_name}-role"
  description        = "Execution role of the ddbsearch export loader ${local.function_name}"
  assume_role_policy = data.aws_iam_policy_document.function_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "function" {
  statement {
    sid       = "DescribeTableExports"
    effect    = "Allow"
    actions   = ["dynamodb:DescribeExport"]
    resources = ["${var.table_arn}/export/*"]
  }

  statement {
    sid       = "ReadExportFiles"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.exports.arn}/${local.exports_prefix}*"]
  }

  # Exactly the indexer's requests on the stack's own index paths (domain_grants).
  dynamic "statement" {
    for_each = var.domain_grants
    content {
      sid       = "Domain${statement.value.sid}"
      effect    = "Allow"
      actions   = statement.value.actions
      resources = [for path in statement.value.paths : "${var.domain_arn}/${path}"]
    }
  }

  statement {
    sid       = "DeadLetter"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [var.dlq_arn]
  }

  statement {
    sid       = "OwnLogGroup"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }

  dynamic "statement" {
    for_each = compact([var.kms_key_arn])
    content {
      sid       = "DecryptExports"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  name   = "${local.function_name}-policy"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}

resource "aws_iam_role_policy_attachment" "vpc" {
  count      = var.vpc == null ? 0 : 1
  role       = aws_iam_role.function.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy_attachment" "xray" {
  count      = var.tracing_enabled ? 1 : 0
  role       = aws_iam_role.function.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

# --------------------------------------------------------------------------- state machine

data "aws_iam_policy_document" "state_machine_assume" {
  statement {
    sid     = "StatesAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }

    # Only this account's state machine may use the role (confused deputy).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "state_machine" {
  name               = "${local.state_machine_name}-role"
  description        = "Role of the ddbsearch export load state machine ${local.state_machine_name}"
  assume_role_policy = data.aws_iam_policy_document.state_machine_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "state_machine" {
  statement {
    sid       = "InvokeLoader"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.this.arn, "${aws_lambda_function.this.arn}:*"]
  }

  # ItemReader reads manifest-files.json of an export.
  statement {
    sid       = "ReadExportManifest"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.exports.arn}/${local.exports_prefix}*"]
  }

  # ResultWriter writes the map run's result (multipart for large results).
  statement {
    sid    = "WriteLoadResults"
    effect = "Allow"
    actions = [
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.exports.arn}/${local.results_prefix}*"]
  }

  # A Distributed Map runs its children as executions of this state machine.
  statement {
    sid       = "RunChildExecutions"
    effect    = "Allow"
    actions   = ["states:StartExecution"]
    resources = [local.state_machine_arn]
  }

  statement {
    sid       = "ManageChildExecutions"
    effect    = "Allow"
    actions   = ["states:DescribeExecution", "states:StopExecution"]
    resources = [local.execution_arns]
  }

  # Vended log delivery: these CloudWatch Logs actions support no resource-level
  # permissions (AWS's documented policy for Step Functions logging uses "*").
  statement {
    sid    = "LogDelivery"
    effect = "Allow"
    actions = [
      "logs:CreateLogDelivery",
      "logs:GetLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
      "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.tracing_enabled ? [1] : []
    content {
      sid       = "Tracing"
      effect    = "Allow"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = compact([var.kms_key_arn])
    content {
      sid       = "UseExportKey"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "state_machine" {
  name   = "${local.state_machine_name}-policy"
  role   = aws_iam_role.state_machine.id
  policy = data.aws_iam_policy_document.state_machine.json
}
