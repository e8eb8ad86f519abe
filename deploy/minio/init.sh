#!/bin/bash
# The compose `minio-init` one-shot, run by the minio/mc image (bash, no sed) with the root
# credentials in MC_HOST_local: the app's bucket, and a user that may use that bucket only.
#
# The app never holds the root credentials: STORAGE_URL carries FACESEARCH_S3_ACCESS_KEY and
# FACESEARCH_S3_SECRET_KEY, a user whose only policy (app-policy.json beside this file, with
# @S3_BUCKET@ replaced by the bucket's name) allows what core/storage.py does: check the
# bucket, and get, stat, put (multipart too) and delete objects in it. No other bucket, no
# bucket creation or deletion, no listing of buckets, no admin API.
#
# Idempotent: every step succeeds on a second run (a restart, or a changed secret).
set -euo pipefail

: "${S3_BUCKET:?S3_BUCKET must name the app bucket}"
: "${FACESEARCH_S3_ACCESS_KEY:?FACESEARCH_S3_ACCESS_KEY must be set: the app user of MinIO}"
: "${FACESEARCH_S3_SECRET_KEY:?FACESEARCH_S3_SECRET_KEY must be set: the secret of the app user}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
policy_name="${FACESEARCH_S3_POLICY:-facesearch-app}"
policy_file="$(mktemp)"
trap 'rm -f "$policy_file"' EXIT

template="$(<"$here/app-policy.json")"
printf '%s\n' "${template//@S3_BUCKET@/$S3_BUCKET}" >"$policy_file"

mc mb --ignore-existing "local/$S3_BUCKET"
mc admin policy create local "$policy_name" "$policy_file"   # replaces an older version
mc admin user add local "$FACESEARCH_S3_ACCESS_KEY" "$FACESEARCH_S3_SECRET_KEY"
# MinIO refuses to attach a policy that is already attached: that is success here.
if ! output="$(mc admin policy attach local "$policy_name" --user "$FACESEARCH_S3_ACCESS_KEY" 2>&1)"; then
  case "$output" in
    *"already"*) ;;
    *) printf '%s\n' "$output" >&2; exit 1 ;;
  esac
fi
printf 'bucket %s ready; user %s holds policy %s only\n' \
  "$S3_BUCKET" "$FACESEARCH_S3_ACCESS_KEY" "$policy_name"
