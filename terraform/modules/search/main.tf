# The Amazon OpenSearch Service domain the indexer writes to, with secure
# defaults: encryption at rest and between nodes, HTTPS only with a TLS 1.2+
# policy, and an access policy that names its principals (never "*").

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  # Zone awareness needs a data node count that is a multiple of the zone count.
  zone_count = var.instance_count % 3 == 0 ? 3 : (var.instance_count % 2 == 0 ? 2 : 1)
  domain_arn = "arn:${data.aws_partition.current.partition}:es:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:domain/${var.domain_name}"
  log_types  = var.log_publishing_enabled ? toset(["INDEX_SLOW_LOGS", "SEARCH_SLOW_LOGS", "ES_APPLICATION_LOGS"]) : toset([])
}

resource "aws_cloudwatch_log_group" "domain" {
  #checkov:skip=CKV_AWS_158:KMS encryption is opt-in through log_kms_key_arn; CloudWatch Logs encrypts every log group at rest with a service key by default.
  #checkov:skip=CKV_AWS_338:Retention is an operator choice (log_retention_days); a year of slow logs for a search index costs more than it tells.
  for_each = local.log_types

  name              = "/aws/opensearch/${var.domain_name}/${lower(each.key)}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "log_publishing" {
  count = var.log_publishing_enabled ? 1 : 0

  statement {
    sid     = "OpenSearchLogPublishing"
    effect  = "Allow"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      for group in aws_cloudwatch_log_group.domain : "${group.arn}:*"
    ]

    principals {
      type        = "Service"
      identifiers = ["es.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.domain_arn]
    }
  }
}

resource "aws_cloudwatch_log_resource_policy" "domain" {
  count = var.log_publishing_enabled ? 1 : 0

  policy_name     = "${var.domain_name}-opensearch-logs"
  policy_document = data.aws_iam_policy_document.log_publishing[0].json
}

resource "aws_opensearch_domain" "this" {
  #checkov:skip=CKV_AWS_247:Encryption at rest is always on; a customer managed key is opt-in through kms_key_arn (the default is the AWS managed aws/es key).
  #checkov:skip=CKV_AWS_137:VPC placement is opt-in (variable vpc); the default public endpoint is closed by the IAM access policy and SigV4.
  #checkov:skip=CKV_AWS_317:Audit logs need fine-grained access control, which is opt-in (fine_grained_access_control_enabled); slow and application logs are published.
  #checkov:skip=CKV_AWS_318:Dedicated master nodes triple the cost of the small default domain; set dedicated_master_enabled for production clusters.
  #checkov:skip=CKV2_AWS_59:Dedicated master nodes triple the cost of the small default domain; set dedicated_master_enabled for production clusters.
  #checkov:skip=CKV2_AWS_52:Access is controlled by IAM (SigV4) through the domain access policy; fine-grained access control is opt-in.
  domain_name    = var.domain_name
  engine_version = var.engine_version

  cluster_config {
    instance_type          = var.instance_type
    instance_count         = var.instance_count
    zone_awareness_enabled = local.zone_count > 1

    dedicated_master_enabled = var.dedicated_master_enabled
    dedicated_master_type    = var.dedicated_master_enabled ? var.dedicated_master_type : null
    dedicated_master_count   = var.dedicated_master_enabled ? 3 : null

    dynamic "zone_awareness_config" {
      for_each = local.zone_count > 1 ? [local.zone_count] : []
      content {
        availability_zone_count = zone_awareness_config.value
      }
    }
  }

  ebs_options {
    ebs_enabled = true
    volume_type = "gp3"
    volume_size = var.volume_size_gb
  }

  encrypt_at_rest {
    enabled    = true
    kms_key_id = var.kms_key_arn
  }

  node_to_node_encryption {
    enabled = true
  }

  domain_endpoint_options {
    enforce_https       = true
    tls_security_policy = var.tls_security_policy
  }

  dynamic "advanced_security_options" {
    for_each = var.fine_grained_access_control_enabled ? [1] : []
    content {
      enabled                        = true
      anonymous_auth_enabled         = false
      internal_user_database_enabled = false
      master_user_options {
        master_user_arn = var.operator_arns[0]
      }
    }
  }

  dynamic "vpc_options" {
    for_each = var.vpc == null ? [] : [var.vpc]
    content {
      subnet_ids         = vpc_options.value.subnet_ids
      security_group_ids = vpc_options.value.security_group_ids
    }
  }

  dynamic "log_publishing_options" {
    for_each = local.log_types
    content {
      log_type                 = log_publishing_options.value
      cloudwatch_log_group_arn = aws_cloudwatch_log_group.domain[log_publishing_options.value].arn
    }
  }

  tags = var.tags

  depends_on = [aws_cloudwatch_log_resource_policy.domain]
}

# Kept apart from the domain so that changing who may call the domain never
# touches the (slow to update) domain itself.
data "aws_iam_policy_document" "access" {
  statement {
    sid     = "Indexer"
    effect  = "Allow"
    actions = ["es:ESHttpPost", "es:ESHttpPut", "es:ESHttpGet", "es:ESHttpHead", "es:ESHttpDelete"]
    resources = [
      "${aws_opensearch_domain.this.arn}/*",
    ]

    principals {
      type        = "AWS"
      identifiers = [var.indexer_role_arn]
    }
  }

  statement {
    sid       = "Operators"
    effect    = "Allow"
    actions   = ["es:ESHttp*"]
    resources = ["${aws_opensearch_domain.this.arn}/*"]

    principals {
      type        = "AWS"
      identifiers = var.operator_arns
    }
  }
}

resource "aws_opensearch_domain_policy" "this" {
  domain_name     = aws_opensearch_domain.this.domain_name
  access_policies = data.aws_iam_policy_document.access.json
}
