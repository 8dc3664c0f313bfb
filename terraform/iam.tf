# Who may call the search domain besides the indexer: the operator principals
# (and the read-only reader principals)
# given, or by default the identity running `terraform apply`. An assumed-role
# session ARN (arn:aws:sts::...:assumed-role/R/s) is not a valid principal in a
# resource policy, so the session is resolved to its role ARN.

data "aws_caller_identity" "current" {}

data "aws_iam_session_context" "current" {
  arn = data.aws_caller_identity.current.arn
}

locals {
  operator_arns = length(var.operator_arns) > 0 ? var.operator_arns : [data.aws_iam_session_context.current.issuer_arn]
  # Read-only operators; an operator listed here too keeps the operator's grants only.
  reader_arns = [for arn in distinct(var.reader_arns) : arn if !contains(local.operator_arns, arn)]
}
