# The prod environment: one project, one state (gs://<deploy bucket>/tfstate/prod, set at
# `terraform init -backend-config` by infra/deploy.sh), the whole stack from modules/leadrun.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
  }

  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "leadrun" {
  source = "../../modules/leadrun"

  project_id         = var.project_id
  region             = var.region
  firestore_location = coalesce(var.firestore_location, var.region)
  source_bucket      = var.source_bucket
  source_objects     = var.source_objects
  allowed_origins    = var.allowed_origins
  workspace_subjects = var.workspace_subjects
  operator_uids      = var.operator_uids
  function_secrets   = var.function_secrets

  notification_channels = var.notification_channels
  firebase_api_key      = var.firebase_api_key
  firebase_auth_domain  = var.firebase_auth_domain

  default_max_instances       = 20
  max_instances               = var.max_instances
  firestore_delete_protection = true
  labels                      = { app = "lead-run-actions", env = "prod" }
}
