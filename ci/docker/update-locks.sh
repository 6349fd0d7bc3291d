#!/usr/bin/env bash
# Regenerates the hashed lock files the images install with
# `pip install --require-hashes`:
#   ci/docker/requirements.lock  <- requirements.in  (training image)
#   ci/docker/mlaudit.lock       <- pyproject.toml   (mlaudit's runtime deps)
#   ci/docker/build.lock         <- build.in         (the wheel build backend)
# Resolve on the images' Python (3.11, Linux x86_64): markers are evaluated here.
# Review the diff like code: every new hash is a new thing the image trusts.
set -euo pipefail
cd "$(dirname "$0")/../.."
PIP_TOOLS_VERSION=7.6.2
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "pip-tools==$PIP_TOOLS_VERSION"
# Only the public index: a machine's find-links or extra indexes must not
# leak into the lock's hashes.
compile() {
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    "$venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --output-file "$1" "$2"
}
compile ci/docker/requirements.lock ci/docker/requirements.in
compile ci/docker/mlaudit.lock pyproject.toml
compile ci/docker/build.lock ci/docker/build.in
