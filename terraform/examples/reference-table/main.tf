# The reference pipeline of the original blog post: creates UsersTransactions
# (userId N, transactionId N) and indexes it. Build the zip first:
#   ddbsearch package --output indexer.zip && terraform init && terraform apply

module "ddbsearch" {
  source = "../.."

  name            = "ddbsearch-example"
  region          = "us-east-1"
  lambda_zip_path = "${path.module}/indexer.zip"
}

output "dashboards_url" {
  description = "OpenSearch Dashboards of the example stack."
  value       = module.ddbsearch.dashboards_url
}

output "domain_endpoint" {
  description = "Search endpoint of the example stack."
  value       = module.ddbsearch.domain_endpoint
}
