# ddbsearch: make a DynamoDB table searchable.
#   table --(stream, NEW_AND_OLD_IMAGES)--> indexer Lambda --(SigV4 _bulk)--> OpenSearch domain
# `ddbsearch deploy` runs this root module from a per-stack copy; it can also be
# used directly (see examples/).

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ "ddbsearch:stack" = var.name }, var.tags)
  }
}

data "aws_region" "current" {}

locals {
  index_name = coalesce(var.index_name, lower(module.table.name))

  # An existing domain is only read (never managed, never destroyed).
  existing_domain = var.existing_domain_arn != null
  domain = local.existing_domain ? {
    arn            = data.aws_opensearch_domain.existing[0].arn
    name           = data.aws_opensearch_domain.existing[0].domain_name
    endpoint       = data.aws_opensearch_domain.existing[0].endpoint
    dashboards_url = "https://${data.aws_opensearch_domain.existing[0].dashboard_endpoint}"
    fgac_enabled   = try(data.aws_opensearch_domain.existing[0].advanced_security_options[0].enabled, false)
    single_node    = try(data.aws_opensearch_domain.existing[0].cluster_config[0].instance_count, 1) == 1
    } : {
    arn            = module.search[0].domain_arn
    name           = module.search[0].domain_name
    endpoint       = module.search[0].endpoint
    dashboards_url = module.search[0].dashboards_url
    fgac_enabled   = module.search[0].fine_grained_access_control_enabled
    single_node    = module.search[0].single_node_without_replicas
  }

  # The indexer sits in the domain's VPC; it may use more subnets (zones) than
  # a one-node domain has.
  function_vpc = var.vpc == null ? null : {
    subnet_ids         = var.vpc.function_subnet_ids != null ? var.vpc.function_subnet_ids : var.vpc.subnet_ids
    security_group_ids = var.vpc.function_security_group_ids != null ? var.vpc.function_security_group_ids : var.vpc.security_group_ids
  }
}

data "aws_opensearch_domain" "existing" {
  count = local.existing_domain ? 1 : 0

  domain_name = element(split("/", var.existing_domain_arn), 1)

  lifecycle {
    postcondition {
      condition     = self.arn == var.existing_domain_arn
      error_message = "existing_domain_arn ${var.existing_domain_arn} is not a domain of this account and Region (found ${self.arn}); deploy the stack in the domain's Region and account."
    }
  }
}

# The domain module was unconditional before existing_domain_arn: keep the
# domain of stacks deployed then (a replacement would lose the index).
moved {
  from = module.search
  to   = module.search[0]
}

module "table" {
  source = "./modules/table"

  table_name                  = var.table_name
  existing_table_name         = var.existing_table_name
  hash_key                    = var.hash_key
  range_key                   = var.range_key
  deletion_protection_enabled = var.table_deletion_protection_enabled
  kms_key_arn                 = var.table_kms_key_arn
}

module "search" {
  source = "./modules/search"
  count  = local.existing_domain ? 0 : 1

  domain_name                         = var.name
  engine_version                      = var.engine_version
  instance_type                       = var.instance_type
  instance_count                      = var.instance_count
  volume_size_gb                      = var.volume_size_gb
  dedicated_master_enabled            = var.dedicated_master_enabled
  dedicated_master_type               = var.dedicated_master_type
  tls_security_policy                 = var.tls_security_policy
  kms_key_arn                         = var.search_kms_key_arn
  fine_grained_access_control_enabled = var.fine_grained_access_control_enabled
  master_user_arn                     = var.master_user_arn
  auto_software_update_enabled        = var.auto_software_update_enabled
  off_peak_window_start_hour          = var.off_peak_window_start_hour
  vpc                                 = var.vpc == null ? null : { subnet_ids = var.vpc.subnet_ids, security_group_ids = var.vpc.security_group_ids }
  index_name                          = local.index_name
  indexer_role_arn                    = module.indexer.role_arn
  indexer_grants                      = module.indexer.domain_grants
  operator_arns                       = local.operator_arns
  reader_arns                         = local.reader_arns
  loader_role_arns                    = local.loader_principals
  log_publishing_enabled              = var.search_log_publishing_enabled
  log_retention_days                  = var.log_retention_days
  log_kms_key_arn                     = var.log_kms_key_arn
}

module "indexer" {
  source = "./modules/indexer"

  function_name       = "${var.name}-indexer"
  lambda_zip_path     = var.lambda_zip_path
  table_name          = module.table.name
  table_arn           = module.table.arn
  stream_arn          = module.table.stream_arn
  domain_arn          = local.domain.arn
  opensearch_endpoint = "https://${local.domain.endpoint}"
  index_name          = local.index_name

  timeout_seconds                    = var.function_timeout_seconds
  memory_mb                          = var.function_memory_mb
  reserved_concurrent_executions     = var.reserved_concurrent_executions
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  parallelization_factor             = var.parallelization_factor
  bisect_on_error_enabled            = var.bisect_on_error_enabled
  maximum_retry_attempts             = var.maximum_retry_attempts
  maximum_record_age_in_seconds      = var.maximum_record_age_in_seconds
  tracing_enabled                    = var.tracing_enabled
  vpc                                = local.function_vpc
  kms_key_arn                        = var.function_kms_key_arn
  dlq_kms_key_arn                    = var.dlq_kms_key_arn
  kms_decrypt_key_arns               = compact([var.table_kms_key_arn])
  log_retention_days                 = var.log_retention_days
  log_kms_key_arn                    = var.log_kms_key_arn
}
