variable "project_id" {
  description = "Google Cloud project of this environment."
  type        = string
}

variable "region" {
  description = "Region of the functions."
  type        = string
}

variable "firestore_location" {
  description = "Firestore location; defaults to the functions' region."
  type        = string
  default     = null
}

variable "source_bucket" {
  description = "Bucket with the functions' source zips (written by infra/deploy.sh upload)."
  type        = string
}

variable "source_objects" {
  description = "Deploy unit => source zip object, from the release file infra/deploy.sh writes."
  type        = map(string)
}

variable "allowed_origins" {
  description = "Web origins allowed by CORS."
  type        = list(string)
}

variable "workspace_subjects" {
  description = "Workspace users the functions may impersonate (the hosts)."
  type        = list(string)
}

variable "operator_uids" {
  description = "Firebase uids that may steer and read any run; empty: no operator (fail closed)."
  type        = list(string)
  default     = []
}

variable "firebase_api_key" {
  description = "Firebase web API key the Operations page signs in with (public); empty: no sign-in."
  type        = string
  default     = ""
}

variable "firebase_auth_domain" {
  description = "Firebase Authentication domain of the Operations page; empty: <project>.firebaseapp.com."
  type        = string
  default     = ""
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids the alerts notify; empty: none."
  type        = list(string)
  default     = []
}

variable "function_secrets" {
  description = "Function name => { ENV_VAR = secret id }."
  type        = map(map(string))
  default     = {}
}

variable "max_instances" {
  description = "Function name => maximum instances."
  type        = map(number)
  default     = {}
}
