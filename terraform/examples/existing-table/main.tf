# Index a table that already exists (its stream must be NEW_IMAGE or NEW_AND_OLD_IMAGES).
# The table is read through a data source: destroying this stack leaves it alone.

module "ddbsearch" {
  source = "../.."

  name                = "orders-search"
  region              = "eu-west-1"
  existing_table_name = "Orders"
  index_name          = "orders"
  lambda_zip_path     = "${path.module}/indexer.zip"
  instance_type       = "r6g.large.search"
  instance_count      = 2
  operator_arns       = ["arn:aws:iam::123456789012:role/search-operators"]
}

output "dashboards_url" {
  description = "OpenSearch Dashboards of the example stack."
  value       = module.ddbsearch.dashboards_url
}
