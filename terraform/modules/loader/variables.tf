variable "name" {
  type        = string
  description = "Stack name: prefixes the state machine, the loader function and the export bucket."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,27}$", var.name))
    error_message = "name must be 2-28 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource of the module."
  default     = {}
}

variable "table_name" {
  type        = string
  description = "Name of the table whose exports are loaded (descriptions only)."
}

variable "table_arn" {
  type        = string
  description = "ARN of the table: the loader may describe its exports (the state machine waits for one)."
}

variable "lambda_zip_path" {
  type        = string
  description = "Path of the indexer zip ('ddbsearch package'); the loader runs its handler.load_file."
}

variable "opensearch_endpoint" {
  type        = string
  description = "HTTPS URL of the search domain."

  validation {
    condition     = startswith(var.opensearch_endpoint, "https://")
    error_message = "opensearch_endpoint must be an https:// URL."
  }
}

variable "index_name" {
  type        = string
  description = "Index the loader writes to (the indexer's)."
}

variable "domain_arn" {
  type        = string
  description = "ARN of the search domain the loader writes to."
}

variable "domain_grants" {
  type = list(object({
    sid     = string
    actions = list(string)
    paths   = list(string)
  }))
  description = "What the loader may send to the domain: the indexer module's domain_grants (same handler code, same requests)."

  validation {
    condition     = alltrue([for grant in var.domain_grants : alltrue([for path in grant.paths : path != "*" && !startswith(path, "*")])])
    error_message = "Domain paths name an index, a template or _aliases, never \"*\"."
  }
}

variable "dlq_arn" {
  type        = string
  description = "ARN of the indexer's dead-letter queue: rows that cannot be indexed go there, as on the stream path."
}

variable "dlq_url" {
  type        = string
  description = "URL of the indexer's dead-letter queue."
}

variable "max_concurrency" {
  type        = number
  description = "Export files loaded at once (the Distributed Map's MaxConcurrency): the bound that keeps the domain from being overrun."
  default     = 8

  validation {
    condition     = var.max_concurrency >= 1 && var.max_concurrency <= 1000 && floor(var.max_concurrency) == var.max_concurrency
    error_message = "max_concurrency must be a whole number from 1 to 1000."
  }
}

variable "tolerated_failure_percentage" {
  type        = number
  description = "Share of export files that may fail (after retries) before the load fails (ToleratedFailurePercentage)."
  default     = 0

  validation {
    condition     = var.tolerated_failure_percentage >= 0 && var.tolerated_failure_percentage <= 100
    error_message = "tolerated_failure_percentage must be from 0 to 100."
  }
}

variable "timeout_seconds" {
  type        = number
  description = "Loader function timeout; a file not done in time continues in the next invocation."
  default     = 900

  validation {
    condition     = var.timeout_seconds >= 60 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be from 60 to 900."
  }
}

variable "memory_mb" {
  type        = number
  description = "Loader function memory (MB); CPU and network scale with it."
  default     = 1024

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240
    error_message = "memory_mb must be from 128 to 10240."
  }
}

variable "export_retention_days" {
  type        = number
  description = "Days export files and load results stay in the bucket before they expire."
  default     = 7

  validation {
    condition     = var.export_retention_days >= 1
    error_message = "export_retention_days must be at least 1."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the export bucket; null uses the AWS managed key aws/s3."
  default     = null
}

variable "function_kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the loader function's environment; null uses an AWS managed key."
  default     = null
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the loader's and the state machine's log groups."
  default     = 30
}

variable "log_kms_key_arn" {
  type        = string
  description = "KMS key for the log groups; null uses CloudWatch Logs' own encryption."
  default     = null
}

variable "tracing_enabled" {
  type        = bool
  description = "X-Ray tracing for the loader function and the state machine."
  default     = false
}

variable "vpc" {
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
  })
  description = "Run the loader in these subnets (for a VPC domain); null: no VPC."
  default     = null
}
