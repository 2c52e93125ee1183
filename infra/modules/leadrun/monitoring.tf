# Log-based metrics, alerts and a dashboard (docs/operations.md, "Alerts"). Each metric counts the
# JSON lines the functions write (common/log.py): a line's fields are the entry's jsonPayload, its
# severity the entry's severity, its `logging.googleapis.com/labels` the entry's labels.
# tests/infra/test_alerts.py runs the code that writes each line and checks every filter on it.

locals {
  log_metrics = {
    dead_letters = {
      description = "Actions Pub/Sub gave up on: the dead-letter function marked their receipt failed (common/handlers/dead_letter.py)."
      filter      = "severity=ERROR AND jsonPayload.outcome=\"dead_lettered\""
      labels      = { action = "EXTRACT(labels.action)" }
    }
    failed_receipts = {
      description = "Receipts a delivery recorded failed: a permanent error, an unreadable lead, an expired message (common/handlers/delivery.py)."
      filter      = "jsonPayload.status=\"failed\""
      labels      = { action = "EXTRACT(labels.action)", reason = "EXTRACT(jsonPayload.outcome)" }
    }
    late_runs = {
      description = "The sweeper found an action of a run pending 30 minutes after its planned start (common/handlers/sweep.py)."
      filter      = "jsonPayload.message=\"run pending past its eta\""
      labels      = {}
    }
    sweeps = {
      description = "Sweeper ticks, one line each (common/handlers/sweep.py)."
      filter      = "jsonPayload.message=\"sweep\" AND jsonPayload.outcome:*"
      labels      = {}
    }
    refusals = {
      description = "Calls Google refused for one of its limits (429, rate-limit 403, daily cap, Calendar lockout), by API (common/lanes.py)."
      filter      = "jsonPayload.message=\"google refused a call\""
      labels      = { api = "EXTRACT(labels.api)", reason = "EXTRACT(jsonPayload.reason)" }
    }
    lane_slowdowns = {
      description = "Refusals that slowed a host's lane down: Google's limit is tighter than the lane's pace (common/lanes.py)."
      filter      = "jsonPayload.message=\"google refused a call\" AND jsonPayload.lane=\"slowed\""
      labels      = { api = "EXTRACT(labels.api)" }
    }
    function_errors = {
      description = "Lines the functions write at ERROR or above, other than failed receipts and dead letters: an unexpected error, a message dropped, a publish that failed."
      filter      = "severity>=ERROR AND jsonPayload.message:* AND NOT jsonPayload.status=\"failed\" AND NOT jsonPayload.outcome=\"dead_lettered\""
      labels      = {}
    }
    actions_done = {
      description = "Actions done (live runs), by action: calendar (Calendar API), email (Gmail API), drive (Drive API)."
      filter      = "jsonPayload.status=\"done\""
      labels      = { action = "EXTRACT(labels.action)" }
    }
    waiting = {
      description = "Leads parked by a delivery to wait for one of Google's limits or their turn in the lane, by API and reason."
      filter      = "jsonPayload.outcome=\"waiting\""
      labels      = { api = "EXTRACT(jsonPayload.waiting.api)", reason = "EXTRACT(jsonPayload.waiting.reason)" }
    }
  }

  # Counter alerts: more than `above` lines of a metric within `window_s` (per `by` label, if any).
  log_alerts = {
    dead_letters = {
      title    = "Lead Run: an action was dead-lettered"
      above    = 0
      window_s = 300
      by       = ["metric.label.action"]
    }
    failed_receipts = {
      title    = "Lead Run: receipts failed"
      above    = 0
      window_s = 300
      by       = ["metric.label.action", "metric.label.reason"]
    }
    late_runs = {
      title    = "Lead Run: a run is still pending 30 minutes after its eta"
      above    = 0
      window_s = 600
      by       = []
    }
    lane_slowdowns = {
      title    = "Lead Run: Google refuses calls faster than the lanes expect"
      above    = 3
      window_s = 900
      by       = ["metric.label.api"]
    }
  }

  # Where the functions' lines and request metrics live: each 2nd-gen function is a Cloud Run service.
  run_resource = "resource.type=\"cloud_run_revision\""
  alerts_doc   = "docs/operations.md, \"Alerts\""
}

resource "google_logging_metric" "counter" {
  for_each = local.log_metrics

  project          = var.project_id
  name             = "leadrun_${each.key}"
  description      = each.value.description
  filter           = each.value.filter
  label_extractors = each.value.labels

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key        = labels.key
        value_type = "STRING"
      }
    }
  }

  depends_on = [google_project_service.api]
}

# How long a delivery took, from its start to the line that says how it ended (a receipt's new
# status, or its wait): `elapsedMs` of that line (common/log.py, Story), waiting for the lane's
# turn included.
resource "google_logging_metric" "delivery_ms" {
  project          = var.project_id
  name             = "leadrun_delivery_ms"
  description      = "Time from a delivery's start to its last line (elapsedMs), by action."
  filter           = "jsonPayload.elapsedMs:* AND jsonPayload.status:*"
  value_extractor  = "EXTRACT(jsonPayload.elapsedMs)"
  label_extractors = { action = "EXTRACT(labels.action)" }

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"

    labels {
      key        = "action"
      value_type = "STRING"
    }
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 64
      growth_factor      = 1.2
      scale              = 10
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_monitoring_alert_policy" "log_count" {
  for_each = local.log_alerts

  project               = var.project_id
  display_name          = each.value.title
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "${google_logging_metric.counter[each.key].name} above ${each.value.above} in ${each.value.window_s}s"

    condition_threshold {
      filter          = "${local.run_resource} AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.counter[each.key].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.above
      duration        = "0s"

      aggregations {
        alignment_period     = "${each.value.window_s}s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = each.value.by
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "${google_logging_metric.counter[each.key].description} What to do: ${local.alerts_doc}, \"${each.value.title}\"."
  }

  alert_strategy {
    auto_close = "86400s"
  }
}

# No sweep line for 5 minutes: nothing publishes the waiting leads or the lost messages.
resource "google_monitoring_alert_policy" "sweeper_silent" {
  project               = var.project_id
  display_name          = "Lead Run: the sweeper is silent"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "no ${google_logging_metric.counter["sweeps"].name} line for 300s"

    condition_absent {
      filter   = "${local.run_resource} AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.counter["sweeps"].name}\""
      duration = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "No sweep line for 5 minutes. What to do: ${local.alerts_doc}, \"Lead Run: the sweeper is silent\"."
  }

  alert_strategy {
    auto_close = "86400s"
  }
}

# Errors the code logs, and 5xx answers of the functions (a raised exception, a retry asked of
# Pub/Sub). A few 5xx are Google's bad minutes being retried; more than 10 in 5 minutes is not.
resource "google_monitoring_alert_policy" "function_errors" {
  project               = var.project_id
  display_name          = "Lead Run: function errors"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "${google_logging_metric.counter["function_errors"].name} above 0 in 300s"

    condition_threshold {
      filter          = "${local.run_resource} AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.counter["function_errors"].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "5xx answers above 10 in 300s"

    condition_threshold {
      filter          = "${local.run_resource} AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\" AND resource.labels.service_name=one_of(${join(", ", [for name in keys(local.functions) : "\"${name}\""])})"
      comparison      = "COMPARISON_GT"
      threshold_value = 10
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "An unexpected error in a function, or many 5xx answers. What to do: ${local.alerts_doc}, \"Lead Run: function errors\"."
  }

  alert_strategy {
    auto_close = "86400s"
  }
}

resource "google_monitoring_dashboard" "leadrun" {
  project = var.project_id
  # Its charts name the metrics above by type (logging.googleapis.com/user/leadrun_*).
  dashboard_json = file("${path.module}/dashboard.json")

  depends_on = [google_logging_metric.counter, google_logging_metric.delivery_ms]
}
