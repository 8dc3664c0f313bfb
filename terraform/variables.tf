# Defaults of the pipeline variables repeat ddbsearch/defaults.py (a test keeps
# both in step), so the local stack behaves like the deployed one.

variable "name" {
  type        = string
  description = "Stack name: names the search domain and prefixes the function, its role and its queue."
  default     = "ddbsearch"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,27}$", var.name))
    error_message = "The stack name is 3-28 characters: a lowercase letter, then lowercase letters, digits or hyphens."
  }
}

variable "region" {
  type        = string
  description = "AWS Region to deploy to; null takes it from the environment (AWS_REGION, the profile)."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource (ddbsearch:stack is always set)."
  default     = {}
}

# --- table --------------------------------------------------------------------

variable "table_name" {
  type        = string
  description = "Name of the table to create when no existing table is adopted."
  default     = "UsersTransactions"
}

variable "existing_table_name" {
  type        = string
  description = "Adopt this existing table instead of creating one; it is only read, never managed or deleted. Empty creates table_name."
  default     = ""
  nullable    = false
}

variable "hash_key" {
  type = object({
    name = string
    type = string
  })
  description = "Partition key of the created table (type S, N or B)."
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
  description = "Sort key of the created table (type S, N or B); null for none."
  default     = { name = "transactionId", type = "N" }

  validation {
    condition     = var.range_key == null || contains(["S", "N", "B"], try(var.range_key.type, ""))
    error_message = "Key attribute types are S, N or B."
  }
}

variable "table_deletion_protection_enabled" {
  type        = bool
  description = "Protect the created table against deletion (destroy then fails until it is turned off)."
  default     = false
}

variable "table_kms_key_arn" {
  type        = string
  description = "Customer managed KMS key of the created table; null uses the AWS managed key. The indexer may decrypt with it."
  default     = null
}

variable "index_name" {
  type        = string
  description = "OpenSearch index name; null uses the table name in lower case."
  default     = null

  validation {
    condition     = var.index_name == null || can(regex("^[a-z0-9][a-z0-9_.-]{0,254}$", var.index_name))
    error_message = "An index name is lowercase letters, digits, '_', '-' and '.', not starting with '_', '-' or '.'."
  }
}

# --- indexer ------------------------------------------------------------------

variable "lambda_zip_path" {
  type        = string
  description = "Path of the function zip built by 'ddbsearch package' (handler.py at its root)."
}

variable "function_timeout_seconds" {
  type        = number
  description = "Indexer timeout in seconds (the handler retries transient errors until shortly before it)."
  default     = 120

  validation {
    condition     = var.function_timeout_seconds >= 1 && var.function_timeout_seconds <= 900
    error_message = "Lambda timeouts are 1-900 seconds."
  }
}

variable "function_memory_mb" {
  type        = number
  description = "Indexer memory in MB (Lambda scales CPU with it)."
  default     = 512

  validation {
    condition     = var.function_memory_mb >= 128 && var.function_memory_mb <= 10240
    error_message = "Lambda memory is 128-10240 MB."
  }
}

variable "reserved_concurrent_executions" {
  type        = number
  description = "Reserved concurrency of the indexer; -1 leaves it unreserved."
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
  description = "Concurrent batches per stream shard (ordering per key is kept)."
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
  description = "Retries of a failing batch before it goes to the dead-letter queue; -1 retries until the record expires."
  default     = 100

  validation {
    condition     = var.maximum_retry_attempts >= -1 && var.maximum_retry_attempts <= 10000
    error_message = "maximum_retry_attempts is -1-10000."
  }
}

variable "maximum_record_age_in_seconds" {
  type        = number
  description = "Records older than this go to the dead-letter queue; -1 keeps them until the stream expires them (24 h)."
  default     = 21600

  validation {
    condition     = var.maximum_record_age_in_seconds == -1 || (var.maximum_record_age_in_seconds >= 60 && var.maximum_record_age_in_seconds <= 604800)
    error_message = "maximum_record_age_in_seconds is -1 or 60-604800."
  }
}

variable "tracing_enabled" {
  type        = bool
  description = "Turn on AWS X-Ray active tracing for the indexer."
  default     = false
}

# --- search domain ------------------------------------------------------------

variable "engine_version" {
  type        = string
  description = "OpenSearch engine version of the domain (OpenSearch_X.Y)."
  default     = "OpenSearch_2.19"

  validation {
    condition     = can(regex("^OpenSearch_[0-9]+\\.[0-9]+$", var.engine_version))
    error_message = "Use an OpenSearch engine version such as OpenSearch_2.19."
  }
}

variable "instance_type" {
  type        = string
  description = "Instance type of the data nodes."
  default     = "t3.small.search"

  validation {
    condition     = endswith(var.instance_type, ".search")
    error_message = "OpenSearch Service instance types end in .search (for example t3.small.search)."
  }
}

variable "instance_count" {
  type        = number
  description = "Number of data nodes; a multiple of 3 spreads them over 3 Availability Zones, else a multiple of 2 over 2. One node means no replica (deploy warns)."
  default     = 1

  validation {
    condition     = var.instance_count >= 1 && floor(var.instance_count) == var.instance_count
    error_message = "instance_count is a whole number of at least 1."
  }
}

variable "volume_size_gb" {
  type        = number
  description = "EBS (gp3) volume size per data node, in GiB."
  default     = 10

  validation {
    condition     = var.volume_size_gb >= 10
    error_message = "gp3 volumes are at least 10 GiB."
  }
}

variable "dedicated_master_enabled" {
  type        = bool
  description = "Run three dedicated master nodes (recommended for production)."
  default     = false
}

variable "dedicated_master_type" {
  type        = string
  description = "Instance type of the three dedicated master nodes, when dedicated_master_enabled."
  default     = "m6g.large.search"

  validation {
    condition     = endswith(var.dedicated_master_type, ".search")
    error_message = "OpenSearch Service instance types end in .search (for example m6g.large.search)."
  }
}

variable "tls_security_policy" {
  type        = string
  description = "TLS policy of the domain's HTTPS endpoint (TLS 1.2 or later only)."
  default     = "Policy-Min-TLS-1-2-PFS-2023-10"

  validation {
    condition     = contains(["Policy-Min-TLS-1-2-PFS-2023-10", "Policy-Min-TLS-1-2-2019-07"], var.tls_security_policy)
    error_message = "Only TLS 1.2+ policies are allowed: Policy-Min-TLS-1-2-PFS-2023-10 or Policy-Min-TLS-1-2-2019-07."
  }
}

variable "function_kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the indexer function's environment variables; null uses the AWS managed key (the environment holds no secrets)."
  default     = null
}

variable "dlq_kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the dead-letter queue; null uses SQS managed encryption (SSE-SQS). The indexer role gets kms:GenerateDataKey and kms:Decrypt on it, through SQS only."
  default     = null
}

variable "search_kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the domain's encryption at rest; null uses the AWS managed key."
  default     = null
}

variable "fine_grained_access_control_enabled" {
  type        = bool
  description = "Turn on fine-grained access control (FGAC) with master_user_arn as IAM master user; deploy then maps the indexer's and the operators' roles after the domain exists (docs/aws.md)."
  default     = false
}

variable "master_user_arn" {
  type        = string
  description = "IAM master user of fine-grained access control: the principal that may change its roles and mappings (deploy runs as it). null uses the first of operator_arns (or the identity running Terraform)."
  default     = null

  validation {
    condition     = var.master_user_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(user|role)/.+$", var.master_user_arn))
    error_message = "master_user_arn is an IAM user or role ARN."
  }
}

variable "auto_software_update_enabled" {
  type        = bool
  description = "Install the domain's service software updates (security patches) automatically in the off-peak window."
  default     = true
}

variable "off_peak_window_start_hour" {
  type        = number
  description = "Start of the domain's daily 10-hour off-peak window, in which updates are installed (UTC hour, 0-23)."
  default     = 22

  validation {
    condition     = var.off_peak_window_start_hour >= 0 && var.off_peak_window_start_hour <= 23 && floor(var.off_peak_window_start_hour) == var.off_peak_window_start_hour
    error_message = "off_peak_window_start_hour is a whole UTC hour, 0-23."
  }
}

variable "existing_domain_arn" {
  type        = string
  description = "Use this existing OpenSearch Service domain (same account and Region) instead of creating one; the stack never changes or deletes it, nor its access policy (docs/aws.md says what to grant). null creates a domain."
  default     = null

  validation {
    condition     = var.existing_domain_arn == null || can(regex("^arn:aws[a-z-]*:es:[a-z0-9-]+:[0-9]{12}:domain/[a-z][a-z0-9-]{2,27}$", var.existing_domain_arn))
    error_message = "existing_domain_arn is an OpenSearch Service domain ARN: arn:aws:es:REGION:ACCOUNT:domain/NAME."
  }
}

variable "operator_arns" {
  type        = list(string)
  description = "IAM users or roles allowed to call the domain (search, status, backfill, Dashboards); empty means the identity running Terraform."
  default     = []

  validation {
    condition     = alltrue([for arn in var.operator_arns : can(regex("^arn:aws[a-z-]*:(iam::[0-9]{12}:(root|user/.+|role/.+)|sts::[0-9]{12}:federated-user/.+)$", arn))])
    error_message = "operator_arns are IAM user, role, account root or STS federated-user ARNs (never \"*\")."
  }
}

variable "reader_arns" {
  type        = list(string)
  description = "IAM users or roles that may only read the stack's index: search, status, verify without --repair, explain (and, with fine-grained access control, Dashboards in read-only mode). They get no write, index, alias or template access; an ARN also in operator_arns is an operator."
  default     = []

  validation {
    condition     = alltrue([for arn in var.reader_arns : can(regex("^arn:aws[a-z-]*:(iam::[0-9]{12}:(root|user/.+|role/.+)|sts::[0-9]{12}:federated-user/.+)$", arn))])
    error_message = "reader_arns are IAM user, role, account root or STS federated-user ARNs (never \"*\")."
  }
}

variable "vpc" {
  type = object({
    subnet_ids                  = list(string)
    security_group_ids          = list(string)
    function_subnet_ids         = optional(list(string))
    function_security_group_ids = optional(list(string))
  })
  description = "VPC placement of the domain and the indexer; null keeps a public, IAM-protected endpoint. subnet_ids: one subnet per Availability Zone of the domain (1 for one node or any count that is not a multiple of 2 or 3; 2 or 3 for a zone-aware domain). function_subnet_ids / function_security_group_ids: the indexer's, default the domain's."
  default     = null

  validation {
    condition     = var.vpc == null || try(length(var.vpc.subnet_ids) >= 1 && length(var.vpc.subnet_ids) <= 3 && length(distinct(var.vpc.subnet_ids)) == length(var.vpc.subnet_ids), false)
    error_message = "vpc.subnet_ids lists 1, 2 or 3 distinct subnets: one per Availability Zone of the domain."
  }

  validation {
    condition     = var.vpc == null || try(length(var.vpc.security_group_ids) >= 1, false)
    error_message = "vpc.security_group_ids needs at least one security group (it must allow HTTPS from the indexer to the domain)."
  }

  validation {
    condition     = var.vpc == null || try(length(coalesce(var.vpc.function_subnet_ids, var.vpc.subnet_ids)) >= 1 && length(coalesce(var.vpc.function_security_group_ids, var.vpc.security_group_ids)) >= 1, false)
    error_message = "The indexer function needs at least one subnet and one security group in the VPC (vpc.function_subnet_ids / vpc.function_security_group_ids, or the domain's)."
  }
}

variable "search_log_publishing_enabled" {
  type        = bool
  description = "Publish the domain's slow logs and application logs to CloudWatch Logs."
  default     = true
}

# --- logs ---------------------------------------------------------------------

variable "log_retention_days" {
  type        = number
  description = "Retention of every log group of the stack, in days."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "log_kms_key_arn" {
  type        = string
  description = "KMS key for the stack's log groups; null uses CloudWatch Logs' default encryption."
  default     = null
}

# --------------------------------------------------------------------------- export loader

variable "export_loader_enabled" {
  type        = bool
  description = "Provision the export loader (Step Functions Distributed Map + loader Lambda + export bucket) for 'ddbsearch backfill --from-export'."
  default     = true
}

variable "export_load_max_concurrency" {
  type        = number
  description = "Export files loaded at once: bounds the _bulk load on the domain (the Distributed Map's MaxConcurrency)."
  default     = 8

  validation {
    condition     = var.export_load_max_concurrency >= 1 && var.export_load_max_concurrency <= 1000 && floor(var.export_load_max_concurrency) == var.export_load_max_concurrency
    error_message = "export_load_max_concurrency must be a whole number from 1 to 1000."
  }
}

variable "export_load_tolerated_failure_percentage" {
  type        = number
  description = "Share of export files that may fail after retries before the load fails."
  default     = 0

  validation {
    condition     = var.export_load_tolerated_failure_percentage >= 0 && var.export_load_tolerated_failure_percentage <= 100
    error_message = "export_load_tolerated_failure_percentage must be from 0 to 100."
  }
}

variable "export_retention_days" {
  type        = number
  description = "Days table exports and load results stay in the export bucket."
  default     = 7

  validation {
    condition     = var.export_retention_days >= 1
    error_message = "export_retention_days must be at least 1."
  }
}

variable "export_kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the export bucket; null uses the AWS managed key aws/s3."
  default     = null
}
