# Topics (docs/api.md, "Topics") and one push subscription per Pub/Sub-triggered function, named and
# configured as in common/topology.py. docs/decisions/0003-deploy-subscriptions.md says why the
# subscriptions are ours rather than Eventarc's.

resource "google_pubsub_topic" "topic" {
  for_each = toset(local.topics)

  project = var.project_id
  name    = each.value
  labels  = var.labels

  depends_on = [google_project_service.api]
}

resource "google_pubsub_subscription" "push" {
  for_each = local.push_functions

  project = var.project_id
  name    = each.value.subscription
  topic   = google_pubsub_topic.topic[each.value.topic].id
  labels  = var.labels

  ack_deadline_seconds       = each.value.ack_deadline
  message_retention_duration = "${local.message_retention_s}s"
  retain_acked_messages      = true # `leadrun seek` can replay acknowledged messages

  expiration_policy {
    ttl = "" # never expires, however quiet
  }

  retry_policy {
    minimum_backoff = "${local.retry_min_backoff_s}s"
    maximum_backoff = "${local.retry_max_backoff_s}s"
  }

  dynamic "dead_letter_policy" {
    for_each = each.value.dead_letter ? [local.dead_letter_topic] : []
    content {
      dead_letter_topic     = google_pubsub_topic.topic[dead_letter_policy.value].id
      max_delivery_attempts = local.max_delivery_attempts
    }
  }

  push_config {
    # functions-framework turns the push envelope into a CloudEvent when the path names the topic.
    push_endpoint = "${google_cloudfunctions2_function.function[each.key].service_config[0].uri}/projects/${var.project_id}/topics/${each.value.topic}"

    oidc_token {
      service_account_email = google_service_account.push_invoker.email
      audience              = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    }
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invoker,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}

# The Pub/Sub service agent forwards undeliverable messages: it publishes to the dead-letter
# topic and must be able to acknowledge them on the source subscription.
locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.topic[local.dead_letter_topic].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = { for name, fn in local.push_functions : name => fn if fn.dead_letter }

  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
