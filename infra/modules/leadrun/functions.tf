# Eight Cloud Functions (2nd gen) built from four deploy units. HTTP functions are public at the
# IAM layer because they verify Firebase ID tokens themselves (docs/api.md, "Auth"); Pub/Sub functions
# accept only internal traffic, invoked by the push subscriptions' OIDC identity.

# Settings only some functions read, by function name.
locals {
  # Operators may steer and read any run (docs/decisions/0014); everyone else only their own.
  # Empty means no operator: the check fails closed.
  operator_env = { LEADRUN_OPERATOR_UIDS = join(",", var.operator_uids) }

  # The Operations page is served by diagnostics at <functions origin>/diagnostics/ops and steers
  # through control on the same origin; control's CORS allows that one origin (a browser sends
  # Origin on a same-origin POST too), and nothing wider.
  functions_origin = "https://${var.region}-${var.project_id}.cloudfunctions.net"

  function_env = {
    control = merge(local.operator_env, {
      LEADRUN_OPS_ORIGIN = local.functions_origin
    })
    diagnostics = merge(local.operator_env, {
      LEADRUN_CONTROL_URL          = "${local.functions_origin}/control"
      LEADRUN_FIREBASE_API_KEY     = var.firebase_api_key
      LEADRUN_FIREBASE_AUTH_DOMAIN = var.firebase_auth_domain
    })
    sweep = {
      LEADRUN_SWEEP_STALE_S = tostring(local.sweep_stale_s)
      LEADRUN_SWEEP_LOOP_S  = tostring(local.sweep_loop_s)
    }
  }
}

resource "google_service_account" "function" {
  for_each = local.functions

  project      = var.project_id
  account_id   = "leadrun-${each.key}"
  display_name = "Lead Run Actions: ${each.key} function"

  depends_on = [google_project_service.api]
}

resource "google_service_account" "push_invoker" {
  project      = var.project_id
  account_id   = "leadrun-push-invoker"
  display_name = "Lead Run Actions: Pub/Sub push identity"

  depends_on = [google_project_service.api]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "leadrun-build"
  display_name = "Lead Run Actions: builds the functions' containers"

  depends_on = [google_project_service.api]
}

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  project     = var.project_id
  location    = var.region
  name        = each.key
  description = "Lead Run Actions: ${each.key} (functions/${each.value.source_dir}, entry point ${each.value.target})"
  labels      = merge(var.labels, { deploy-unit = each.value.source_dir })

  build_config {
    runtime         = "python311"
    entry_point     = each.value.target
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_objects[each.value.source_dir]
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function[each.key].email
    ingress_settings                 = each.value.signature == "http" ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = "512Mi"
    timeout_seconds                  = each.value.ack_deadline # a push delivery must end within its ack deadline
    min_instance_count               = 0
    max_instance_count               = lookup(var.max_instances, each.key, var.default_max_instances)
    max_instance_request_concurrency = 1

    environment_variables = merge({
      GOOGLE_CLOUD_PROJECT       = var.project_id
      LEADRUN_GOOGLE_MODE        = "workspace"
      LEADRUN_DELEGATION_SA      = google_service_account.function[each.key].email
      LEADRUN_ALLOWED_ORIGINS    = join(",", var.allowed_origins)
      LEADRUN_WORKSPACE_SUBJECTS = join(",", var.workspace_subjects)
      LOG_EXECUTION_ID           = "true"
    }, lookup(local.function_env, each.key, {}))

    dynamic "secret_environment_variables" {
      for_each = lookup(var.function_secrets, each.key, {})
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = contains(keys(var.source_objects), each.value.source_dir)
      error_message = "source_objects has no zip for deploy unit ${each.value.source_dir} (run infra/deploy.sh upload)."
    }
  }

  depends_on = [
    google_project_iam_member.build,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

# Pub/Sub pushes with the invoker's OIDC token; only that identity may call the subscribers.
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  for_each = local.push_functions

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push_invoker.email}"
}

# The web client calls the HTTP functions with a Firebase ID token, which the code verifies.
resource "google_cloud_run_v2_service_iam_member" "public_http" {
  for_each = local.http_functions

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Pub/Sub mints the push OIDC tokens as the invoker.
resource "google_service_account_iam_member" "pubsub_mints_push_tokens" {
  service_account_id = google_service_account.push_invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}
