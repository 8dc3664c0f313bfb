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

  domain_name                         = var.name
  engine_version                      = var.engine_version
  instance_type                       = var.instance_type
  instance_count                      = var.instance_count
  volume_size_gb                      = var.volume_size_gb
  dedicated_master_enabled            = var.dedicated_master_enabled
  tls_security_policy                 = var.tls_security_policy
  kms_key_arn                         = var.search_kms_key_arn
  fine_grained_access_control_enabled = var.fine_grained_access_control_enabled
  vpc                                 = var.vpc
  indexer_role_arn                    = module.indexer.role_arn
  operator_arns                       = local.operator_arns
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
  domain_arn          = module.search.domain_arn
  opensearch_endpoint = "https://${module.search.endpoint}"
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
  vpc                                = var.vpc
  kms_decrypt_key_arns               = compact([var.table_kms_key_arn])
  log_retention_days                 = var.log_retention_days
  log_kms_key_arn                    = var.log_kms_key_arn
}
