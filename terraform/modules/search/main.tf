# The Amazon OpenSearch Service domain the indexer writes to, with secure
# defaults: encryption at rest and between nodes, HTTPS only with a TLS 1.2+
# policy, and an access policy that names its principals (never "*").

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  # Zone awareness needs a data node count that is a multiple of the zone count.
  zone_count = var.instance_count % 3 == 0 ? 3 : (var.instance_count % 2 == 0 ? 2 : 1)
  # Without FGAC the master user is meaningless; with it, null means the first operator.
  master_user_arn = coalesce(var.master_user_arn, var.operator_arns[0])
  # The index and its generations <index>-NNNNNN (see the indexer module's
  # iam.tf on "?" against "*"), and anything under them.
  generation  = "${var.index_name}-??????"
  index_paths = [var.index_name, "${var.index_name}/*", local.generation, "${local.generation}/*"]
  # Operators: search, count, mapping and status reads, backfill's writes (index
  # and template creation, bulks) on the stack's indices, the generations'
  # lifecycle, point-in-time pages and scrolls, and Dashboards (which, without
  # FGAC, reaches every index).
  operator_grants = [
    {
      sid     = "OperatorsOwnIndices"
      actions = ["es:ESHttpHead", "es:ESHttpGet", "es:ESHttpPost", "es:ESHttpPut"]
      paths   = concat(local.index_paths, ["${var.index_name},${var.index_name}-building"])
    },
    {
      # Listing the generations is one multi-target GET "<index>,<index>-*".
      sid     = "OperatorsListGenerations"
      actions = ["es:ESHttpGet"]
      paths   = ["${var.index_name},${var.index_name}-*"]
    },
    {
      # Only generations are ever deleted (retired ones), never the alias.
      sid     = "OperatorsDropGenerations"
      actions = ["es:ESHttpDelete"]
      paths   = [local.generation]
    },
    {
      sid     = "OperatorsOwnIndexTemplate"
      actions = ["es:ESHttpGet", "es:ESHttpPut"]
      paths   = ["_index_template/ddbsearch-${var.index_name}"]
    },
    {
      sid     = "OperatorsAliases"
      actions = ["es:ESHttpGet", "es:ESHttpPost"]
      paths   = ["_aliases"]
    },
    {
      sid     = "OperatorsDashboards"
      actions = ["es:ESHttpHead", "es:ESHttpGet", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpPatch", "es:ESHttpDelete"]
      paths   = ["_dashboards", "_dashboards/*"]
    },
    {
      # Pages of a point in time (search --all, verify) go to "POST /_search" with
      # the PIT id in the body: IAM cannot tell that from a search of every index,
      # so readers get it only when fine-grained access control confines them.
      sid     = "OperatorsPointInTimePages"
      actions = ["es:ESHttpPost"]
      paths   = ["_search"]
    },
    {
      # Continuing or closing a scroll (or closing a point in time) needs its id,
      # which only a search the principal was allowed to open returns.
      sid     = "OperatorsScrollsAndPointInTimeClose"
      actions = ["es:ESHttpPost", "es:ESHttpDelete"]
      paths   = ["_search/scroll", "_search/point_in_time"]
    },
  ]
  # Read-only operators (reader_arns): the stack's indices through GET/HEAD and
  # the read-only POST endpoints only; no bulk, template, alias or index writes.
  # Without FGAC, Dashboards would let them read and write every index (its Dev
  # Tools run as the caller), so they get it only under FGAC, in read-only mode.
  reader_search_paths = flatten([
    for index in [var.index_name, local.generation] : [
      "${index}/_search", "${index}/_search/point_in_time", "${index}/_count", "${index}/_mget",
    ]
  ])
  reader_grants = concat(
    [
      {
        sid     = "ReadersOwnIndices"
        actions = ["es:ESHttpHead", "es:ESHttpGet"]
        paths   = concat(local.index_paths, ["${var.index_name},${var.index_name}-building", "${var.index_name},${var.index_name}-*"])
      },
      {
        sid     = "ReadersSearch"
        actions = ["es:ESHttpPost"]
        paths   = local.reader_search_paths
      },
      {
        sid     = "ReadersScrollsAndPointInTimeClose"
        actions = ["es:ESHttpPost", "es:ESHttpDelete"]
        paths   = ["_search/scroll", "_search/point_in_time"]
      },
    ],
    var.fine_grained_access_control_enabled ? [
      {
        sid     = "ReadersPointInTimePages"
        actions = ["es:ESHttpPost"]
        paths   = ["_search"]
      },
      {
        sid     = "ReadersDashboards"
        actions = ["es:ESHttpHead", "es:ESHttpGet", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpPatch", "es:ESHttpDelete"]
        paths   = ["_dashboards", "_dashboards/*"]
      },
    ] : [],
  )
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
  #checkov:skip=CKV_AWS_247:Encryption at rest is always on; a customer managed key is opt-in through search_kms_key_arn (the default is the AWS managed aws/es key).
  #checkov:skip=CKV_AWS_137:VPC placement is opt-in (variable vpc); the default public endpoint is closed by the IAM access policy and SigV4.
  #checkov:skip=CKV_AWS_317:Audit logs need fine-grained access control (fine_grained_access_control_enabled); application logs are published; search and indexing slow logs are published and every index ddbsearch creates sets slow-log thresholds (ddbsearch/core/template.py SLOW_LOG_THRESHOLDS).
  #checkov:skip=CKV_AWS_318:Three dedicated masters (default dedicated_master_type m6g.large.search, about $0.38/h) cost about 10 times the default single t3.small.search node (about $0.036/h); set dedicated_master_enabled for production clusters.
  #checkov:skip=CKV2_AWS_59:Three dedicated masters (default dedicated_master_type m6g.large.search, about $0.38/h) cost about 10 times the default single t3.small.search node (about $0.036/h); set dedicated_master_enabled for production clusters.
  #checkov:skip=CKV2_AWS_52:Access is controlled by IAM (SigV4) through the domain access policy; fine-grained access control is opt-in (fine_grained_access_control_enabled).
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
        master_user_arn = local.master_user_arn
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

  # Service software updates (security patches) install themselves, in a
  # nightly 10-hour off-peak window starting at off_peak_window_start_hour UTC.
  software_update_options {
    auto_software_update_enabled = var.auto_software_update_enabled
  }

  off_peak_window_options {
    enabled = true
    off_peak_window {
      window_start_time {
        hours   = var.off_peak_window_start_hour
        minutes = 0
      }
    }
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = !var.fine_grained_access_control_enabled || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(user|role)/.+$", local.master_user_arn))
      error_message = "Fine-grained access control needs an IAM user or role as master user, not ${local.master_user_arn}: set master_user_arn (by default the first of operator_arns is used)."
    }

    precondition {
      condition     = var.vpc == null || length(distinct(try(var.vpc.subnet_ids, []))) == local.zone_count
      error_message = "instance_count = ${var.instance_count} places the domain in ${local.zone_count} Availability Zone(s), so vpc.subnet_ids must list exactly ${local.zone_count} distinct subnet(s), one per zone; it lists ${length(distinct(try(var.vpc.subnet_ids, [])))}. Use instance_count 1 with one subnet, a multiple of 2 with two subnets, or a multiple of 3 with three (vpc.function_subnet_ids may list more subnets for the function)."
    }
  }

  depends_on = [aws_cloudwatch_log_resource_policy.domain]
}

# Kept apart from the domain so that changing who may call the domain never
# touches the (slow to update) domain itself.
# local.domain_arn (known at plan time, equal to the domain's ARN) lets the plan
# show the whole policy.
data "aws_iam_policy_document" "access" {
  dynamic "statement" {
    for_each = var.indexer_grants
    content {
      sid       = "Indexer${statement.value.sid}"
      effect    = "Allow"
      actions   = statement.value.actions
      resources = [for path in statement.value.paths : "${local.domain_arn}/${path}"]

      principals {
        type        = "AWS"
        identifiers = concat([var.indexer_role_arn], var.loader_role_arns)
      }
    }
  }

  dynamic "statement" {
    for_each = local.operator_grants
    content {
      sid       = statement.value.sid
      effect    = "Allow"
      actions   = statement.value.actions
      resources = [for path in statement.value.paths : "${local.domain_arn}/${path}"]

      principals {
        type        = "AWS"
        identifiers = var.operator_arns
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.reader_arns) > 0 ? local.reader_grants : []
    content {
      sid       = statement.value.sid
      effect    = "Allow"
      actions   = statement.value.actions
      resources = [for path in statement.value.paths : "${local.domain_arn}/${path}"]

      principals {
        type        = "AWS"
        identifiers = var.reader_arns
      }
    }
  }

  # With FGAC, deploy maps the indexer's and the operators' roles through the
  # security plugin's REST API, as the master user.
  dynamic "statement" {
    for_each = var.fine_grained_access_control_enabled ? [local.master_user_arn] : []
    content {
      sid       = "MasterUserSecurityApi"
      effect    = "Allow"
      actions   = ["es:ESHttpGet", "es:ESHttpPut", "es:ESHttpPatch", "es:ESHttpDelete"]
      resources = ["${local.domain_arn}/_plugins/_security/api/*"]

      principals {
        type        = "AWS"
        identifiers = [statement.value]
      }
    }
  }
}

resource "aws_opensearch_domain_policy" "this" {
  domain_name     = aws_opensearch_domain.this.domain_name
  access_policies = data.aws_iam_policy_document.access.json
}
