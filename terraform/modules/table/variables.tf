variable "table_name" {
  type        = string
  description = "Name of the table to create when no existing table is adopted."
  default     = "UsersTransactions"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.table_name))
    error_message = "A DynamoDB table name is 3-255 characters of a-z, A-Z, 0-9, '_', '-' and '.'."
  }
}

variable "existing_table_name" {
  type        = string
  description = "Adopt this existing table (read only, never managed or deleted) instead of creating one; empty creates table_name."
  default     = ""
  nullable    = false
}

variable "hash_key" {
  type = object({
    name = string
    type = string
  })
  description = "Partition key of the created table."
  default     = { name = "userId", type = "N" }

  validation {
    condition     = contains(["S", "N", "B"], var.hash_key.type)
    error_message = "Key attribute types are S, N or B."
  }
}

variable "range_key" {
  type = object({
    name = string
    type = string
  })
  description = "Sort key of the created table; null for a table without one."
  default     = { name = "transactionId", type = "N" }

  validation {
    condition     = var.range_key == null || contains(["S", "N", "B"], try(var.range_key.type, ""))
    error_message = "Key attribute types are S, N or B."
  }
}

variable "deletion_protection_enabled" {
  type        = bool
  description = "Protect the created table against deletion (destroy then fails until it is turned off)."
  default     = false
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the created table; null uses the AWS managed key (aws/dynamodb)."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Tags for the created table."
  default     = {}
}
