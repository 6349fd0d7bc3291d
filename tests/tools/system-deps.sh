#!/usr/bin/env bash
# Installs the system tools the test suite drives for real. Idempotent: a tool
# already present is left alone. Needs root and apt-get to install; elsewhere
# it only reports what is missing (the tests that need it then say so).
set -euo pipefail

need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
# setpriv (util-linux) sets the trials' parent-death signal without a preexec hook.
command -v setpriv >/dev/null || need_apt+=(util-linux)
# Headless Chromium lays out report.html at phone and desktop width (report tests).
command -v chromium >/dev/null || need_apt+=(chromium)
# Data pinned in Git LFS (issue 20) is checked with the real git-lfs.
command -v git-lfs >/dev/null || need_apt+=(git-lfs)
# RFC 3161 timestamps (issue 19): mlaudit and the local test TSA both use `openssl ts`.
command -v openssl >/dev/null || need_apt+=(openssl)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "system-deps: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "system-deps: missing ${need_apt[*]} (install them; tests that need them will fail)" >&2
  fi
fi

# PostgreSQL for the mlaudit+postgresql store tests (issue 5): Debian's package, a
# started cluster, and a login role that may create the per-session test databases.
# Anything that fails here only makes those tests skip, with the reason printed.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null; then
    echo "system-deps: installing postgresql"
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || true
  fi
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header 2>/dev/null | while read -r ver cluster _port status _rest; do
      if [ "$status" != "online" ]; then
        pg_ctlcluster "$ver" "$cluster" start || echo "system-deps: could not start postgresql $ver/$cluster" >&2
      fi
    done
    if command -v runuser >/dev/null; then
      runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mlaudit') THEN
          CREATE ROLE mlaudit LOGIN PASSWORD 'mlaudit' CREATEDB;
        END IF; END \$\$;" >/dev/null 2>&1 \
        || echo "system-deps: could not create the mlaudit postgresql role" >&2
    fi
  fi
else
  command -v pg_ctlcluster >/dev/null \
    || echo "system-deps: postgresql missing (the mlaudit+postgresql tests will skip)" >&2
fi
bash "$(dirname "$0")/ci-deps.sh"  # CI-file linters, buildah, debootstrap, gitlab-ci-local
