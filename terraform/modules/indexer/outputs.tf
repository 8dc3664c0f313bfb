output "function_name" {
  description = "Name of the indexer Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the indexer Lambda function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the function's execution role (known at plan time; available once the role exists)."
  value       = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/${aws_iam_role.this.name}"
}

output "event_source_mapping_uuid" {
  description = "UUID of the stream -> function event source mapping."
  value       = aws_lambda_event_source_mapping.this.uuid
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "log_group_name" {
  description = "Name of the function's CloudWatch log group."
  value       = aws_cloudwatch_log_group.function.name
}

output "domain_grants" {
  description = "What the function may send to the domain (sid, es:ESHttp* actions, paths under the domain ARN); the domain's access policy grants the same."
  value       = local.domain_grants
}
