#!/usr/bin/env bash
# Makes the local stand-in for the Dockerfiles' BASE_IMAGE (Docker Hub is not
# reachable here): a debootstrap'd bookworm minbase with Debian's python3 and
# venv, committed into buildah's vfs store. Cached: a second call only prints
# the image name. Usage: base-image.sh  (env MLAUDIT_BUILDAH_CACHE, default
# /var/cache/mlaudit-test). Prints the image reference on stdout.
set -euo pipefail

cache=${MLAUDIT_BUILDAH_CACHE:-/var/cache/mlaudit-test}
image=localhost/mlaudit-test-base:bookworm-1
mirror=${MLAUDIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache"
export CONTAINERS_STORAGE_CONF="$cache/storage.conf"
if [ ! -f "$CONTAINERS_STORAGE_CONF" ]; then
  # One store for the tests and for the GitLab build job they run, outside the
  # repo so it survives a fresh clone; vfs because there is no overlay mount here.
  cat >"$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "vfs"
graphroot = "$cache/storage"
runroot = "$cache/run"
CONF
fi

if buildah inspect --type image "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

# Serialise concurrent callers (pytest-xdist, a second test run): one debootstrap.
exec 9>"$cache/base.lock"
flock 9
if buildah inspect --type image "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
  || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
# This network reaches PyPI through a TLS-inspecting proxy whose CA only the
# host trusts: give the base the host's bundle, as a company base image would.
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
# Like the official slim images: no apt lists or caches left in the base.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
tar -C "$rootfs" -cf "$cache/rootfs.tar" .
ctr=$(buildah from scratch)
buildah add "$ctr" "$cache/rootfs.tar" / >/dev/null
# pip (23.0, from Debian's ensurepip) reads certifi's bundle unless told otherwise.
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --cmd /bin/bash "$ctr"
buildah commit --quiet "$ctr" "$image" >/dev/null
buildah rm "$ctr" >/dev/null
rm -f "$cache/rootfs.tar"
echo "$image"
