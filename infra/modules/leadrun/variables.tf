variable "project_id" {
  description = "Google Cloud project that hosts the functions, topics and Firestore."
  type        = string
}

variable "region" {
  description = "Region of the functions (e.g. europe-west1)."
  type        = string
}

variable "firestore_location" {
  description = "Firestore location (a region or multi-region such as eur3); fixed once created."
  type        = string
}

variable "source_bucket" {
  description = "Bucket holding the functions' source zips (uploaded by infra/deploy.sh)."
  type        = string
}

variable "source_objects" {
  description = "Deploy unit (functions/<unit>) => object in source_bucket holding its build/<unit> zip."
  type        = map(string)
}

variable "allowed_origins" {
  description = "Web origins allowed by CORS on the HTTP functions (LEADRUN_ALLOWED_ORIGINS)."
  type        = list(string)
}

variable "workspace_subjects" {
  description = <<-EOT
    Google Workspace users the functions may impersonate through domain-wide delegation (the hosts
    whose calendars, mailboxes and Drives are used), passed as LEADRUN_WORKSPACE_SUBJECTS.
    Domain-wide delegation itself is granted in the Workspace Admin console (docs/deploy.md).
  EOT
  type        = list(string)

  validation {
    condition     = alltrue([for s in var.workspace_subjects : can(regex("^[^@\\s]+@[^@\\s]+$", s))])
    error_message = "workspace_subjects must be e-mail addresses of Workspace users."
  }
}

variable "operator_uids" {
  description = <<-EOT
    Firebase uids of the operators, passed as LEADRUN_OPERATOR_UIDS to control and diagnostics:
    a token of one of them may steer and read any run, not only its own. Empty by default: no
    operator, every caller steers and reads only the runs it started (docs/decisions/0014).
  EOT
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for uid in var.operator_uids : can(regex("^[^,\\s]{1,128}$", uid))])
    error_message = "operator_uids must be Firebase uids (1 to 128 characters, no comma or space)."
  }
}

variable "notification_channels" {
  description = <<-EOT
    Cloud Monitoring notification channels (projects/P/notificationChannels/ID) the alerts of
    monitoring.tf notify. Empty by default: the alerts open incidents in the console only.
  EOT
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", id))])
    error_message = "notification_channels must be ids of the form projects/PROJECT/notificationChannels/ID."
  }
}

variable "firebase_api_key" {
  description = "Firebase web API key the Operations page signs in with (public; empty: the page cannot sign in)."
  type        = string
  default     = ""
}

variable "firebase_auth_domain" {
  description = "Firebase Authentication domain of the Operations page (empty: <project_id>.firebaseapp.com)."
  type        = string
  default     = ""
}

variable "default_max_instances" {
  description = "Maximum instances of each function, unless max_instances names it."
  type        = number
  default     = 10
}

variable "max_instances" {
  description = "Function name => maximum instances, overriding default_max_instances."
  type        = map(number)
  default     = {}
}

variable "function_secrets" {
  description = <<-EOT
    Function name => { ENV_VAR = secret id }: Secret Manager secrets exposed to that function.
    Terraform creates the secrets and grants access; add the values out of band
    (gcloud secrets versions add) so they never reach the Terraform state. Empty by default:
    delegation is keyless (IAM signJwt), so no credential is stored anywhere.
  EOT
  type        = map(map(string))
  default     = {}
}

variable "firestore_delete_protection" {
  description = "Refuse to delete the Firestore database."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels on every labelled resource."
  type        = map(string)
  default     = {}
}
