# The deployment's shape, mirrored from common/topology.py (the single source of truth).
# Terraform cannot import Python, so tests/infra/test_terraform.py expands every resource
# below and fails on any difference from common/topology.py: edit both together.
locals {
  topics            = ["lead-calendar", "lead-notify", "lead-drive", "lead-dead-letter", "lead-sweep"]
  dead_letter_topic = "lead-dead-letter"

  # Cloud Scheduler publishes to sweep_topic on sweep_schedule (UTC); the sweeper re-publishes
  # pending receipts untouched for sweep_stale_s seconds (LEADRUN_SWEEP_STALE_S).
  sweep_topic    = "lead-sweep"
  sweep_schedule = "* * * * *" # every minute: waiting receipts resume within a minute of their time
  sweep_stale_s  = 600
  # One tick publishes what falls due for the schedule's whole period (LEADRUN_SWEEP_LOOP_S), so
  # no start falls between two ticks; the sweep subscription's deadline leaves it a margin.
  sweep_loop_s         = 60
  sweep_ack_deadline_s = 90

  retry_min_backoff_s   = 10
  retry_max_backoff_s   = 600
  max_delivery_attempts = 10
  ack_deadline_s        = 60
  message_retention_s   = 604800 # 7 days: acknowledged messages stay seekable (replay)

  # Cloud Functions name => deploy unit (functions/<source_dir>), entry point, trigger.
  functions = {
    schedule = {
      source_dir   = "schedule"
      target       = "schedule"
      signature    = "http"
      topic        = null
      subscription = null
      dead_letter  = false
      ack_deadline = local.ack_deadline_s
    }
    control = {
      source_dir   = "schedule"
      target       = "control"
      signature    = "http"
      topic        = null
      subscription = null
      dead_letter  = false
      ack_deadline = local.ack_deadline_s
    }
    book = {
      source_dir   = "schedule"
      target       = "book"
      signature    = "cloudevent"
      topic        = "lead-calendar"
      subscription = "lead-calendar-book"
      dead_letter  = true
      ack_deadline = local.ack_deadline_s
    }
    notify = {
      source_dir   = "notify"
      target       = "notify"
      signature    = "cloudevent"
      topic        = "lead-notify"
      subscription = "lead-notify-send"
      dead_letter  = true
      ack_deadline = local.ack_deadline_s
    }
    drive = {
      source_dir   = "drive"
      target       = "drive"
      signature    = "cloudevent"
      topic        = "lead-drive"
      subscription = "lead-drive-create"
      dead_letter  = true
      ack_deadline = local.ack_deadline_s
    }
    diagnostics = {
      source_dir   = "diagnostics"
      target       = "diagnostics"
      signature    = "http"
      topic        = null
      subscription = null
      dead_letter  = false
      ack_deadline = local.ack_deadline_s
    }
    "dead-letter" = {
      source_dir   = "diagnostics"
      target       = "dead_letter"
      signature    = "cloudevent"
      topic        = "lead-dead-letter"
      subscription = "lead-dead-letter-mark"
      dead_letter  = false # the dead-letter handler's own failures are retried, never re-dead-lettered
      ack_deadline = local.ack_deadline_s
    }
    sweep = {
      source_dir   = "diagnostics"
      target       = "sweep"
      signature    = "cloudevent"
      topic        = "lead-sweep"
      subscription = "lead-sweep-run"
      dead_letter  = false # a failed tick is retried, and the next tick sweeps again anyway
      ack_deadline = local.sweep_ack_deadline_s
    }
  }

  http_functions = { for name, fn in local.functions : name => fn if fn.signature == "http" }
  push_functions = { for name, fn in local.functions : name => fn if fn.signature == "cloudevent" }
}
