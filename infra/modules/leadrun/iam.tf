# Least privilege, one service account per function (functions.tf):
#   every function       roles/datastore.user (receipts, counters, holds)
#   schedule             publishes to lead-calendar, lead-drive, lead-notify, and lead-sweep
#                        (wakes the sweeper for the waits it writes)
#   control              publishes to lead-calendar, lead-drive, lead-notify (resume, replay and
#                        undo publish the actions they set going again), and lead-sweep
#   book                 publishes to lead-notify
#   sweep                publishes to lead-calendar, lead-drive, lead-notify (re-publishes stale actions)
#   book, notify, drive  sign their own domain-wide-delegation JWTs (IAM signJwt, no key file)
# Nothing else: no project-wide Pub/Sub, IAM or Storage roles.

locals {
  topic_publishers = {
    "schedule/lead-calendar" = { function = "schedule", topic = "lead-calendar" }
    "schedule/lead-drive"    = { function = "schedule", topic = "lead-drive" }
    "schedule/lead-notify"   = { function = "schedule", topic = "lead-notify" }
    "schedule/lead-sweep"    = { function = "schedule", topic = "lead-sweep" }
    "control/lead-calendar"  = { function = "control", topic = "lead-calendar" }
    "control/lead-drive"     = { function = "control", topic = "lead-drive" }
    "control/lead-notify"    = { function = "control", topic = "lead-notify" }
    "control/lead-sweep"     = { function = "control", topic = "lead-sweep" }
    "book/lead-notify"       = { function = "book", topic = "lead-notify" }
    "sweep/lead-calendar"    = { function = "sweep", topic = "lead-calendar" }
    "sweep/lead-drive"       = { function = "sweep", topic = "lead-drive" }
    "sweep/lead-notify"      = { function = "sweep", topic = "lead-notify" }
  }

  delegating_functions = ["book", "notify", "drive"]

  build_roles = ["roles/run.builder", "roles/logging.logWriter"]
}

resource "google_project_iam_member" "datastore_user" {
  for_each = local.functions

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.topic_publishers

  project = var.project_id
  topic   = google_pubsub_topic.topic[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

resource "google_service_account_iam_member" "self_token_creator" {
  for_each = toset(local.delegating_functions)

  service_account_id = google_service_account.function[each.value].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.function[each.value].email}"
}

resource "google_project_iam_member" "build" {
  for_each = toset(local.build_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}
