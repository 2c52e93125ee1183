output "function_urls" {
  description = "Function name => URL."
  value       = module.leadrun.function_urls
}

output "delegation_client_ids" {
  description = "Function name => OAuth client id to authorise for domain-wide delegation."
  value       = module.leadrun.delegation_client_ids
}

output "function_service_accounts" {
  description = "Function name => service account e-mail."
  value       = module.leadrun.function_service_accounts
}
