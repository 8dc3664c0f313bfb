output "domain_name" {
  description = "Name of the OpenSearch Service domain."
  value       = aws_opensearch_domain.this.domain_name
}

output "domain_arn" {
  description = "ARN of the OpenSearch Service domain."
  value       = aws_opensearch_domain.this.arn
}

output "endpoint" {
  description = "HTTPS endpoint of the domain, without scheme."
  value       = aws_opensearch_domain.this.endpoint
}

output "dashboards_url" {
  description = "URL of OpenSearch Dashboards on the domain."
  value       = "https://${aws_opensearch_domain.this.dashboard_endpoint}"
}
