output "name" {
  description = "Name of the indexed table."
  value       = local.adopt ? data.aws_dynamodb_table.adopted[0].name : aws_dynamodb_table.this[0].name
}

output "arn" {
  description = "ARN of the indexed table."
  value       = local.adopt ? data.aws_dynamodb_table.adopted[0].arn : aws_dynamodb_table.this[0].arn
}

output "stream_arn" {
  description = "ARN of the table's DynamoDB stream (NEW_AND_OLD_IMAGES)."
  value       = local.adopt ? data.aws_dynamodb_table.adopted[0].stream_arn : aws_dynamodb_table.this[0].stream_arn
}

output "adopted" {
  description = "True when the table existed before and is not managed by this stack."
  value       = local.adopt
}
