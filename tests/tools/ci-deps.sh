#!/usr/bin/env bash
# Installs what tests/integration/ci drives for real: gitlab-ci-local (npm, into a
# prefix inside .venv so nothing lands globally), and buildah, debootstrap and rsync
# (Debian). actionlint and zizmor come with the dev extra (pyproject.toml), as wheels. Idempotent: what is present is left alone.
# Elsewhere than root+apt it reports what is missing; the CI tests then FAIL,
# they never skip, so a green run always means the files were really checked.
set -euo pipefail
cd "$(dirname "$0")/../.."

GITLAB_CI_LOCAL_VERSION=4.64.1
NODE_PREFIX=${MLAUDIT_NODE_TOOLS:-.venv/node_tools}

need_apt=()
command -v buildah >/dev/null || need_apt+=(buildah)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v rsync >/dev/null || need_apt+=(rsync)
command -v npm >/dev/null || need_apt+=(npm)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "ci-deps: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "ci-deps: missing ${need_apt[*]} (install them; the CI tests will fail)" >&2
  fi
fi

# Pinned versions: a new release may change behaviour and turn CI red on its own.
have_version() {  # package version
  local pj="$NODE_PREFIX/node_modules/$1/package.json"
  [ -f "$pj" ] && grep -q "\"version\": \"$2\"" "$pj"
}
if command -v npm >/dev/null; then
  want=()
  have_version gitlab-ci-local "$GITLAB_CI_LOCAL_VERSION" || want+=("gitlab-ci-local@$GITLAB_CI_LOCAL_VERSION")
  if [ ${#want[@]} -gt 0 ]; then
    echo "ci-deps: npm install ${want[*]} into $NODE_PREFIX"
    mkdir -p "$NODE_PREFIX"
    npm install --silent --no-audit --no-fund --prefix "$NODE_PREFIX" "${want[@]}" >/dev/null
  fi
fi
