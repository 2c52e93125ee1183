#!/bin/sh
# Deploy the functions built by `make package` (build/<unit>.zip) with Terraform.
#
#   infra/deploy.sh upload           store each build/<unit>.zip under its sha256 and record the
#                                    release (gs://$DEPLOY_BUCKET/releases/$RELEASE.tfvars.json)
#   infra/deploy.sh fetch RELEASE    fetch a recorded release into build/release.tfvars.json (roll back)
#   infra/deploy.sh apply            terraform init + apply infra/environments/$ENV with that release
#
# Environment: PROJECT_ID, REGION, ENV (staging|prod), ALLOWED_ORIGINS and WORKSPACE_SUBJECTS
# (comma-separated); optional OPERATOR_UIDS (comma-separated Firebase uids that may steer any run;
# empty: none), NOTIFICATION_CHANNELS (comma-separated Cloud Monitoring notification channel ids
# the alerts notify; empty: none), FIREBASE_API_KEY and FIREBASE_AUTH_DOMAIN (the Operations
# page's Firebase web sign-in; empty: the page cannot sign in), DEPLOY_BUCKET (default $PROJECT_ID-leadrun-deploy, also holds the Terraform state
# under tfstate/$ENV), RELEASE (default $BUILD_ID, else a UTC timestamp).
# POSIX sh on purpose: `upload`/`fetch` run in the Cloud SDK image, `apply` in hashicorp/terraform.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build="$root/build"
release_file="$build/release.tfvars.json"

: "${PROJECT_ID:?set PROJECT_ID}"
DEPLOY_BUCKET="${DEPLOY_BUCKET:-$PROJECT_ID-leadrun-deploy}"
RELEASE="${RELEASE:-${BUILD_ID:-$(date -u +%Y%m%dT%H%M%SZ)}}"

# A comma-separated list as a Terraform list of strings: a,b -> ["a","b"].
hcl_list() {
  [ -n "$1" ] || { printf '[]'; return; }
  printf '%s\n' "$1" | awk -F, '{
    printf "[";
    for (i = 1; i <= NF; i++) { gsub(/^ +| +$/, "", $i); if ($i != "") { printf "%s\"%s\"", sep, $i; sep = "," } }
    printf "]" }'
}

upload() {
  set -- "$build"/*.zip
  [ -e "$1" ] || { echo "deploy: no build/*.zip, run make package first" >&2; exit 1; }
  objects=""
  for zip in "$@"; do
    unit=$(basename "$zip" .zip)
    sum=$(sha256sum "$zip" | cut -d' ' -f1)
    object="sources/$unit/$sum.zip"
    # Content-addressed: an unchanged unit keeps its object, so Terraform leaves it alone.
    gcloud storage cp --no-clobber "$zip" "gs://$DEPLOY_BUCKET/$object"
    objects="$objects${objects:+, }\"$unit\": \"$object\""
  done
  printf '{"source_bucket": "%s", "source_objects": {%s}}\n' "$DEPLOY_BUCKET" "$objects" >"$release_file"
  gcloud storage cp "$release_file" "gs://$DEPLOY_BUCKET/releases/$RELEASE.tfvars.json"
  echo "deploy: release $RELEASE recorded"
  cat "$release_file"
}

fetch() {
  [ $# -eq 1 ] || { echo "usage: infra/deploy.sh fetch RELEASE" >&2; exit 2; }
  mkdir -p "$build"
  gcloud storage cp "gs://$DEPLOY_BUCKET/releases/$1.tfvars.json" "$release_file"
  cat "$release_file"
}

apply() {
  : "${REGION:?set REGION}" "${ENV:?set ENV (staging or prod)}"
  [ -f "$release_file" ] || { echo "deploy: $release_file missing, run upload or fetch first" >&2; exit 1; }
  env_dir="$here/environments/$ENV"
  [ -d "$env_dir" ] || { echo "deploy: no environment $ENV in infra/environments" >&2; exit 2; }
  terraform -chdir="$env_dir" init -input=false \
    -backend-config="bucket=$DEPLOY_BUCKET" -backend-config="prefix=tfstate/$ENV"
  terraform -chdir="$env_dir" apply -input=false -auto-approve \
    -var-file="$release_file" \
    -var="project_id=$PROJECT_ID" \
    -var="region=$REGION" \
    -var="allowed_origins=$(hcl_list "${ALLOWED_ORIGINS:-}")" \
    -var="workspace_subjects=$(hcl_list "${WORKSPACE_SUBJECTS:-}")" \
    -var="operator_uids=$(hcl_list "${OPERATOR_UIDS:-}")" \
    -var="notification_channels=$(hcl_list "${NOTIFICATION_CHANNELS:-}")" \
    -var="firebase_api_key=${FIREBASE_API_KEY:-}" \
    -var="firebase_auth_domain=${FIREBASE_AUTH_DOMAIN:-}"
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  upload) upload ;;
  fetch) fetch "$@" ;;
  apply) apply ;;
  *) echo "usage: infra/deploy.sh upload | fetch RELEASE | apply" >&2; exit 2 ;;
esac
