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
  value       = local.domain.name
}

output "domain_arn" {
  description = "ARN of the OpenSearch Service domain."
  value       = local.domain.arn
}

output "domain_endpoint" {
  description = "HTTPS URL of the OpenSearch Service domain (requests are SigV4-signed)."
  value       = "https://${local.domain.endpoint}"
}

output "dashboards_url" {
  description = "URL of OpenSearch Dashboards on the domain."
  value       = local.domain.dashboards_url
}

output "domain_managed" {
  description = "False when the stack uses an existing domain (existing_domain_arn): destroy leaves it, and its access policy is the owner's to change."
  value       = !local.existing_domain
}

output "domain_single_node" {
  description = "True when the domain has one data node, hence no replica: fine for trying, not for production (deploy warns; raise instance_count)."
  value       = local.domain.single_node
}

output "fine_grained_access_control_enabled" {
  description = "True when the domain uses fine-grained access control: deploy must then map indexer_role_arn and operator_arns to ddbsearch's roles (docs/aws.md) as the master user."
  value       = local.domain.fgac_enabled
}

output "master_user_arn" {
  description = "IAM master user of fine-grained access control on a domain this stack created; null when FGAC is off or the domain is not the stack's."
  value       = local.existing_domain ? null : module.search[0].master_user_arn
}

output "indexer_role_arn" {
  description = "ARN of the indexer's execution role (the backend role to map under fine-grained access control)."
  value       = module.indexer.role_arn
}

output "indexer_domain_grants" {
  description = "What the indexer may send to the domain (es:ESHttp* actions on paths under domain_arn); with an existing domain, its access policy must allow the same to indexer_role_arn."
  value       = module.indexer.domain_grants
}

output "index_name" {
  description = "OpenSearch index the indexer writes to."
  value       = local.index_name
}

output "operator_arns" {
  description = "Principals allowed to call the domain besides the indexer (backend roles to map under fine-grained access control)."
  value       = local.operator_arns
}

output "reader_arns" {
  description = "Read-only principals (search, status, verify, explain): mapped to ddbsearch's reader role under fine-grained access control."
  value       = local.reader_arns
}

output "region" {
  description = "AWS Region of the stack."
  value       = data.aws_region.current.name
}

output "loader_state_machine_arn" {
  description = "ARN of the export load state machine; null when export_loader_enabled is false."
  value       = one(module.loader[*].state_machine_arn)
}

output "export_bucket" {
  description = "Bucket for table exports and load results; null when export_loader_enabled is false."
  value       = one(module.loader[*].export_bucket)
}

output "loader_role_arn" {
  description = "ARN of the export loader's role: it sends the indexer's requests (indexer_domain_grants), so under fine-grained access control it is mapped like indexer_role_arn; null when export_loader_enabled is false."
  value       = one(module.loader[*].role_arn)
}
