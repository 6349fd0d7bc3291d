#!/usr/bin/env bash
# Installs the system tools the test suite drives for real. Idempotent: a tool
# already present is left alone. Needs root and apt-get to install; elsewhere
# it only reports what is missing (the tests that need it then say so).
set -euo pipefail

need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "system-deps: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "system-deps: missing ${need_apt[*]} (install them; tests that need them will fail)" >&2
  fi
fi
