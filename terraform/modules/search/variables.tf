variable "domain_name" {
  type        = string
  description = "Name of the OpenSearch Service domain."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,27}$", var.domain_name))
    error_message = "A domain name is 3-28 characters: a lowercase letter, then lowercase letters, digits or hyphens."
  }
}

variable "engine_version" {
  type        = string
  description = "Engine version of the domain, as OpenSearch_X.Y."
  default     = "OpenSearch_2.19"

  validation {
    condition     = can(regex("^OpenSearch_[0-9]+\\.[0-9]+$", var.engine_version))
    error_message = "Use an OpenSearch engine version such as OpenSearch_2.19 (Elasticsearch versions are not supported)."
  }
}

variable "instance_type" {
  type        = string
  description = "Instance type of the data nodes."
  default     = "t3.small.search"

  validation {
    condition     = endswith(var.instance_type, ".search")
    error_message = "OpenSearch Service instance types end in .search (for example t3.small.search, r6g.large.search)."
  }
}

variable "instance_count" {
  type        = number
  description = "Number of data nodes; a multiple of 2 or 3 spreads them over that many Availability Zones."
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
  description = "Run three dedicated master nodes (recommended for production clusters)."
  default     = false
}

variable "dedicated_master_type" {
  type        = string
  description = "Instance type of the dedicated master nodes, when enabled."
  default     = "m6g.large.search"
}

variable "tls_security_policy" {
  type        = string
  description = "TLS policy of the HTTPS endpoint."
  default     = "Policy-Min-TLS-1-2-PFS-2023-10"

  validation {
    condition     = contains(["Policy-Min-TLS-1-2-PFS-2023-10", "Policy-Min-TLS-1-2-2019-07"], var.tls_security_policy)
    error_message = "Only TLS 1.2+ policies are allowed: Policy-Min-TLS-1-2-PFS-2023-10 or Policy-Min-TLS-1-2-2019-07."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for encryption at rest; null uses the AWS managed key."
  default     = null
}

variable "indexer_role_arn" {
  type        = string
  description = "ARN of the indexer Lambda's execution role (may read and write documents)."
}

variable "loader_role_arns" {
  type        = list(string)
  description = "Roles that write like the indexer (the export loader's): granted exactly indexer_grants."
  default     = []
}

variable "operator_arns" {
  type        = list(string)
  description = "IAM principals (users or roles) allowed to call the domain: search, status, backfill, Dashboards."

  validation {
    condition     = length(var.operator_arns) > 0 && alltrue([for arn in var.operator_arns : can(regex("^arn:aws[a-z-]*:(iam::[0-9]{12}:(root|user/.+|role/.+)|sts::[0-9]{12}:federated-user/.+)$", arn))])
    error_message = "operator_arns needs at least one IAM user, role, account root or STS federated-user ARN (never \"*\")."
  }
}

variable "reader_arns" {
  type        = list(string)
  description = "IAM principals (users or roles) that may only read the stack's index: search, count, documents, mappings, generations; Dashboards only with fine-grained access control."
  default     = []

  validation {
    condition     = alltrue([for arn in var.reader_arns : can(regex("^arn:aws[a-z-]*:(iam::[0-9]{12}:(root|user/.+|role/.+)|sts::[0-9]{12}:federated-user/.+)$", arn))])
    error_message = "reader_arns are IAM user, role, account root or STS federated-user ARNs (never \"*\")."
  }
}

variable "index_name" {
  type        = string
  description = "The stack's index (alias); operators may use it, its generations (<index>-*) and its template."
}

variable "indexer_grants" {
  type = list(object({
    sid     = string
    actions = list(string)
    paths   = list(string)
  }))
  description = "What the indexer role may send: es:ESHttp* actions on paths under the domain (the indexer module's domain_grants)."

  validation {
    condition     = alltrue([for grant in var.indexer_grants : alltrue([for path in grant.paths : path != "*" && !startswith(path, "*")])])
    error_message = "Indexer paths name an index, a template or _aliases, never \"*\"."
  }
}

variable "fine_grained_access_control_enabled" {
  type        = bool
  description = "Turn on fine-grained access control with master_user_arn (default: the first operator ARN) as IAM master user."
  default     = false
}

variable "master_user_arn" {
  type        = string
  description = "IAM master user of fine-grained access control; null uses the first operator ARN."
  default     = null
}

variable "auto_software_update_enabled" {
  type        = bool
  description = "Install service software updates automatically in the off-peak window."
  default     = true
}

variable "off_peak_window_start_hour" {
  type        = number
  description = "Start of the daily 10-hour off-peak window (UTC hour, 0-23) for software updates and Auto-Tune."
  default     = 22

  validation {
    condition     = var.off_peak_window_start_hour >= 0 && var.off_peak_window_start_hour <= 23 && floor(var.off_peak_window_start_hour) == var.off_peak_window_start_hour
    error_message = "off_peak_window_start_hour is a whole UTC hour, 0-23."
  }
}

variable "vpc" {
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
  })
  description = "Place the domain in these VPC subnets and security groups; null keeps a public, IAM-protected endpoint."
  default     = null
}

variable "log_publishing_enabled" {
  type        = bool
  description = "Publish slow logs and application logs to CloudWatch Logs."
  default     = true
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the domain's CloudWatch log groups, in days."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "log_kms_key_arn" {
  type        = string
  description = "KMS key for the domain's log groups; null uses CloudWatch Logs' default encryption."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource of the module."
  default     = {}
}
