output "state_machine_arn" {
  description = "ARN of the export load state machine (ddbsearch starts executions of it)."
  value       = aws_sfn_state_machine.this.arn
}

output "export_bucket" {
  description = "Bucket that receives table exports (under exports/) and load results (under load-results/)."
  value       = aws_s3_bucket.exports.id
}

output "function_name" {
  description = "Name of the loader Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "role_arn" {
  description = "ARN of the loader function's role (known at plan time, like the indexer's, so the domain's access policy shows in the plan; available once the role exists)."
  value       = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/${aws_iam_role.function.name}"
}

output "state_machine_role_arn" {
  description = "ARN of the state machine's role."
  value       = aws_iam_role.state_machine.arn
}
