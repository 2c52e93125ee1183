#!/bin/sh
# Run one make target inside the Cloud Build image (gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators,
# Debian with Python 3.11, Java and the Pub/Sub and Firestore emulators): adds what that image
# lacks (make, venv), then `make TARGET`. Each Cloud Build step starts from a fresh container.
#   infra/ci.sh lint | typecheck | test | package
set -eu
[ $# -eq 1 ] || { echo "usage: infra/ci.sh TARGET" >&2; exit 2; }
if ! command -v make >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends make python3-venv python3-pip >/dev/null
fi
python3 -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "ci: Python 3.11 needed, got " + sys.version)'
cd "$(dirname "$0")/.."
exec make "$1"
