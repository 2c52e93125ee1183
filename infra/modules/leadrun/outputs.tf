output "function_urls" {
  description = "Function name => URL (SCHEDULE_URL, CONTROL_URL and DIAGNOSTICS_URL for the web client)."
  value       = { for name, fn in google_cloudfunctions2_function.function : name => fn.service_config[0].uri }
}

output "function_service_accounts" {
  description = "Function name => service account e-mail (the client ids for domain-wide delegation are their unique ids)."
  value       = { for name, sa in google_service_account.function : name => sa.email }
}

output "delegation_client_ids" {
  description = "Function name => OAuth client id to authorise in the Workspace Admin console."
  value       = { for name in local.delegating_functions : name => google_service_account.function[name].unique_id }
}

output "subscriptions" {
  description = "Push subscriptions, by function."
  value       = { for name, sub in google_pubsub_subscription.push : name => sub.name }
}
