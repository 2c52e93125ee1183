locals {
  apis = [
    "artifactregistry.googleapis.com",
    "calendar-json.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com", # the sweeper's tick (scheduler.tf)
    "drive.googleapis.com",
    "firebaserules.googleapis.com",
    "firestore.googleapis.com",
    "gmail.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com", # signJwt: keyless domain-wide delegation
    "logging.googleapis.com",        # log-based metrics (monitoring.tf)
    "monitoring.googleapis.com",     # alerts and the dashboard (monitoring.tf)
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "api" {
  for_each = toset(local.apis)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

data "google_project" "this" {
  project_id = var.project_id
}
