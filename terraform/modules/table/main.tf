# The table ddbsearch indexes: either the reference table created here, or an
# existing table adopted by name. An adopted table is read through a data source
# only, so `terraform destroy` can never delete it.

locals {
  # Written as a conditional because checkov's evaluator misreads `!= ""` (and
  # `!= null`) and would then skip the created table's checks.
  adopt = var.existing_table_name == "" ? false : true
}

resource "aws_dynamodb_table" "this" {
  count = local.adopt ? 0 : 1

  name         = var.table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = var.hash_key.name
  range_key    = var.range_key == null ? null : var.range_key.name

  attribute {
    name = var.hash_key.name
    type = var.hash_key.type
  }

  dynamic "attribute" {
    for_each = var.range_key == null ? [] : [var.range_key]
    content {
      name = attribute.value.name
      type = attribute.value.type
    }
  }

  # The indexer needs both images: the new one to index, the keys to delete.
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

  deletion_protection_enabled = var.deletion_protection_enabled

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}

data "aws_dynamodb_table" "adopted" {
  count = local.adopt ? 1 : 0

  name = var.existing_table_name

  lifecycle {
    postcondition {
      condition     = self.stream_enabled && contains(["NEW_IMAGE", "NEW_AND_OLD_IMAGES"], self.stream_view_type)
      error_message = "The adopted table must have a DynamoDB stream with view type NEW_IMAGE or NEW_AND_OLD_IMAGES ('ddbsearch deploy --table NAME' offers to enable NEW_AND_OLD_IMAGES)."
    }
  }
}
