output "domain_name" {
  description = "Name of the OpenSearch Service domain."
  value       = aws_opensearch_domain.this.domain_name
}

output "domain_arn" {
  description = "ARN of the OpenSearch Service domain (known at plan time)."
  value       = local.domain_arn
}

output "endpoint" {
  description = "HTTPS endpoint of the domain, without scheme."
  value       = aws_opensearch_domain.this.endpoint
}

output "dashboards_url" {
  description = "URL of OpenSearch Dashboards on the domain."
  value       = "https://${aws_opensearch_domain.this.dashboard_endpoint}"
}

output "fine_grained_access_control_enabled" {
  description = "True when fine-grained access control is on: deploy must map the indexer and operator roles."
  value       = var.fine_grained_access_control_enabled
}

output "master_user_arn" {
  description = "IAM master user of fine-grained access control; null when it is off."
  value       = var.fine_grained_access_control_enabled ? local.master_user_arn : null
}

output "single_node_without_replicas" {
  description = "True when the domain has one data node: the index then has no replica (auto_expand_replicas 0-1) and one node failure loses search until it is replaced."
  value       = var.instance_count == 1
}
