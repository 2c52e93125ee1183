# Secret Manager for any credential a function needs. None today: delegation is keyless.
locals {
  function_secret_bindings = merge([
    for fn, envs in var.function_secrets : {
      for env, secret in envs : "${fn}/${env}" => { function = fn, secret = secret }
    }
  ]...)
}

resource "google_secret_manager_secret" "secret" {
  for_each = toset([for binding in values(local.function_secret_bindings) : binding.secret])

  project   = var.project_id
  secret_id = each.value
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.function_secret_bindings

  project   = var.project_id
  secret_id = google_secret_manager_secret.secret[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value.function].email}"

  lifecycle {
    precondition {
      condition     = contains(keys(local.functions), each.value.function)
      error_message = "function_secrets names an unknown function: ${each.value.function}."
    }
  }
}
