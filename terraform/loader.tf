# The export loader (modules/loader): `ddbsearch backfill --from-export` exports the
# table to its bucket and starts its state machine, which loads the export's files
# through the indexer zip's handler.load_file. Costs nothing while no load runs.

module "loader" {
  source = "./modules/loader"
  count  = var.export_loader_enabled ? 1 : 0

  name                = var.name
  table_name          = module.table.name
  table_arn           = module.table.arn
  lambda_zip_path     = var.lambda_zip_path
  opensearch_endpoint = "https://${local.domain.endpoint}"
  index_name          = local.index_name
  domain_arn          = local.domain.arn
  domain_grants       = module.indexer.domain_grants
  dlq_arn             = module.indexer.dlq_arn
  dlq_url             = module.indexer.dlq_url

  max_concurrency              = var.export_load_max_concurrency
  tolerated_failure_percentage = var.export_load_tolerated_failure_percentage
  export_retention_days        = var.export_retention_days
  kms_key_arn                  = var.export_kms_key_arn
  function_kms_key_arn         = var.function_kms_key_arn
  tracing_enabled              = var.tracing_enabled
  vpc                          = local.function_vpc
  log_retention_days           = var.log_retention_days
  log_kms_key_arn              = var.log_kms_key_arn
}

locals {
  # The loader sends exactly the indexer's requests (same zip, same handler code):
  # the domain's access policy grants its role the indexer's grants.
  loader_principals = var.export_loader_enabled ? [module.loader[0].role_arn] : []
}
