output "table_name" {
  description = "Name of the indexed DynamoDB table."
  value       = module.table.name
}

output "table_adopted" {
  description = "True when the table existed before this stack; destroy leaves it in place."
  value       = module.table.adopted
}

output "stream_arn" {
  description = "ARN of the table's stream the indexer reads."
  value       = module.table.stream_arn
}

output "function_name" {
  description = "Name of the indexer Lambda function."
  value       = module.indexer.function_name
}

output "event_source_mapping_uuid" {
  description = "UUID of the stream -> indexer event source mapping."
  value       = module.indexer.event_source_mapping_uuid
}

output "dlq_url" {
  description = "URL of the dead-letter queue (records that could not be indexed, failed batches)."
  value       = module.indexer.dlq_url
}

output "log_group_name" {
  description = "CloudWatch log group of the indexer."
  value       = module.indexer.log_group_name
}

output "domain_name" {
  description = "Name of the OpenSearch Service domain."
  value       = module.search.domain_name
}

output "domain_endpoint" {
  description = "HTTPS URL of the OpenSearch Service domain (requests are SigV4-signed)."
  value       = "https://${module.search.endpoint}"
}

output "dashboards_url" {
  description = "URL of OpenSearch Dashboards on the domain."
  value       = module.search.dashboards_url
}

output "index_name" {
  description = "OpenSearch index the indexer writes to."
  value       = local.index_name
}

output "operator_arns" {
  description = "Principals allowed to call the domain besides the indexer."
  value       = local.operator_arns
}

output "region" {
  description = "AWS Region of the stack."
  value       = data.aws_region.current.name
}
