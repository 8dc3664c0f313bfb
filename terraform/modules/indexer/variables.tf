variable "function_name" {
  type        = string
  description = "Name of the indexer Lambda function (also prefixes its role and queue)."

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,55}$", var.function_name))
    error_message = "function_name is 1-55 characters of letters, digits, '-' and '_' (room is left for the -dlq and -role suffixes)."
  }
}

variable "lambda_zip_path" {
  type        = string
  description = "Path of the function zip built by 'ddbsearch package' (handler.py at its root)."
}

variable "table_name" {
  type        = string
  description = "Name of the indexed table (for descriptions)."
}

variable "table_arn" {
  type        = string
  description = "ARN of the indexed table."
}

variable "stream_arn" {
  type        = string
  description = "ARN of the table's stream the function reads."
}

variable "domain_arn" {
  type        = string
  description = "ARN of the OpenSearch Service domain the function writes to."
}

variable "opensearch_endpoint" {
  type        = string
  description = "HTTPS URL of the domain, passed to the function as OPENSEARCH_ENDPOINT."

  validation {
    condition     = startswith(var.opensearch_endpoint, "https://")
    error_message = "The domain endpoint must be an https:// URL."
  }
}

variable "index_name" {
  type        = string
  description = "OpenSearch index the function writes to (INDEX_NAME)."
}

variable "timeout_seconds" {
  type        = number
  description = "Function timeout in seconds."
  default     = 120

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 900
    error_message = "Lambda timeouts are 1-900 seconds."
  }
}

variable "memory_mb" {
  type        = number
  description = "Function memory in MB."
  default     = 512

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240
    error_message = "Lambda memory is 128-10240 MB."
  }
}

variable "reserved_concurrent_executions" {
  type        = number
  description = "Reserved concurrency of the function; -1 leaves it unreserved."
  default     = -1

  validation {
    condition     = var.reserved_concurrent_executions >= -1
    error_message = "reserved_concurrent_executions is -1 (unreserved) or a non-negative number."
  }
}

variable "batch_size" {
  type        = number
  description = "Largest number of stream records per invocation."
  default     = 1000

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "For DynamoDB streams, batch_size is 1-10000."
  }
}

variable "maximum_batching_window_in_seconds" {
  type        = number
  description = "How long Lambda gathers records before invoking, in seconds."
  default     = 0

  validation {
    condition     = var.maximum_batching_window_in_seconds >= 0 && var.maximum_batching_window_in_seconds <= 300
    error_message = "maximum_batching_window_in_seconds is 0-300."
  }
}

variable "parallelization_factor" {
  type        = number
  description = "Concurrent batches per stream shard."
  default     = 1

  validation {
    condition     = var.parallelization_factor >= 1 && var.parallelization_factor <= 10
    error_message = "parallelization_factor is 1-10."
  }
}

variable "bisect_on_error_enabled" {
  type        = bool
  description = "Split a failing batch in two and retry each half."
  default     = true
}

variable "maximum_retry_attempts" {
  type        = number
  description = "Retries of a failing batch before it goes to the on-failure destination; -1 retries until the record expires."
  default     = 100

  validation {
    condition     = var.maximum_retry_attempts >= -1 && var.maximum_retry_attempts <= 10000
    error_message = "maximum_retry_attempts is -1-10000."
  }
}

variable "maximum_record_age_in_seconds" {
  type        = number
  description = "Records older than this go to the on-failure destination; -1 keeps them until the stream expires them (24 h)."
  default     = 21600

  validation {
    condition     = var.maximum_record_age_in_seconds == -1 || (var.maximum_record_age_in_seconds >= 60 && var.maximum_record_age_in_seconds <= 604800)
    error_message = "maximum_record_age_in_seconds is -1 or 60-604800."
  }
}

variable "tracing_enabled" {
  type        = bool
  description = "Turn on AWS X-Ray active tracing for the function."
  default     = false
}

variable "vpc" {
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
  })
  description = "Run the function in these VPC subnets and security groups (needed when the domain is in a VPC)."
  default     = null

  validation {
    condition     = var.vpc == null || (length(try(var.vpc.subnet_ids, [])) >= 1 && length(try(var.vpc.security_group_ids, [])) >= 1)
    error_message = "vpc needs at least one subnet and at least one security group for the function."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the function's environment; null uses the AWS managed key."
  default     = null
}

variable "kms_decrypt_key_arns" {
  type        = list(string)
  description = "KMS keys the function may decrypt with (a customer managed key of the table and its stream)."
  default     = []
}

variable "dlq_kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the dead-letter queue; null uses SQS managed encryption (SSE-SQS). The function may use it through SQS only."
  default     = null
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the function's log group, in days."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "log_kms_key_arn" {
  type        = string
  description = "KMS key for the function's log group; null uses CloudWatch Logs' default encryption."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource of the module."
  default     = {}
}
