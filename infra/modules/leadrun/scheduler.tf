# The sweeper's tick: Cloud Scheduler publishes `{}` to lead-sweep on local.sweep_schedule, and the
# lead-sweep-run push subscription (pubsub.tf) delivers it to the sweep function. Cloud Scheduler
# publishes as its own service agent, whose role (granted when the API is enabled) can publish to
# topics of the project; no grant of ours is needed.

resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project_id
  region      = var.region
  name        = "leadrun-sweep"
  description = "Lead Run Actions: re-publish pending actions whose message was lost (sweep function)"
  schedule    = local.sweep_schedule
  time_zone   = "UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.topic[local.sweep_topic].id
    data       = base64encode("{}")
  }

  depends_on = [google_project_service.api]
}
