# Firestore (native mode), its security rules (infra/firestore.rules) and composite indexes
# (infra/firestore.indexes.json, the Firebase CLI format, so `firebase deploy` reads it too).

locals {
  firestore_rules_path   = "${path.module}/../../firestore.rules"
  firestore_indexes      = jsondecode(file("${path.module}/../../firestore.indexes.json")).indexes
  firestore_indexes_keys = { for index in local.firestore_indexes : join(",", concat([index.collectionGroup, try(index.queryScope, "COLLECTION")], [for field in index.fields : "${field.fieldPath}:${try(field.order, field.arrayConfig)}"])) => index }
}

resource "google_firestore_database" "default" {
  project                           = var.project_id
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC" # receipts and holds use writes guarded by update time; no locks
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.firestore_delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.api]
}

resource "google_firestore_index" "index" {
  for_each = local.firestore_indexes_keys

  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = each.value.collectionGroup
  query_scope = try(each.value.queryScope, "COLLECTION")

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.fieldPath
      order        = try(fields.value.order, null)
      array_config = try(fields.value.arrayConfig, null)
    }
  }
}

resource "google_firebaserules_ruleset" "firestore" {
  project = var.project_id

  source {
    files {
      name    = "firestore.rules"
      content = file(local.firestore_rules_path)
    }
  }

  depends_on = [google_firestore_database.default]
}

resource "google_firebaserules_release" "firestore" {
  project      = var.project_id
  name         = "cloud.firestore" # the (default) database's release
  ruleset_name = "projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.firestore.name}"

  lifecycle {
    replace_triggered_by = [google_firebaserules_ruleset.firestore]
  }
}
