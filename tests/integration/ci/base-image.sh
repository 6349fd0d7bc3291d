#!/usr/bin/env bash
# Makes the local stand-in for the Dockerfiles' BASE_IMAGE (Docker Hub is not
# reachable here): a debootstrap'd bookworm minbase with Debian's python3 and
# venv, committed into a buildah store kept outside the repo. Cached twice: the
# rootfs tarball (debootstrap runs once per machine) and the image in the store.
# Usage: base-image.sh  (env MLAUDIT_BUILDAH_CACHE, default /var/cache/mlaudit-test)
# Prints the image reference on stdout; writes $cache/storage.conf, which callers
# export as CONTAINERS_STORAGE_CONF.
set -euo pipefail

cache=${MLAUDIT_BUILDAH_CACHE:-/var/cache/mlaudit-test}
image=localhost/mlaudit-test-base:bookworm-1
rootfs_tar="$cache/bookworm-minbase-1.tar"
mirror=${MLAUDIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache"
# Serialise concurrent callers: one debootstrap, one import.
exec 9>"$cache/base.lock"
flock 9

export CONTAINERS_STORAGE_CONF="$cache/storage.conf"
if [ ! -f "$CONTAINERS_STORAGE_CONF" ]; then
  # overlay where the kernel lets root mount it (much faster: vfs copies the whole
  # root filesystem for every layer); vfs, which works anywhere, otherwise.
  driver=vfs
  probe=$(mktemp -d "$cache/probe.XXXXXX")
  mkdir -p "$probe"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
      "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    driver=overlay
  fi
  rm -rf "$probe"
  cat >"$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "$driver"
graphroot = "$cache/storage-$driver"
runroot = "$cache/run-$driver"
CONF
fi

if buildah inspect --type image "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

if [ ! -f "$rootfs_tar" ]; then
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
  tar -C "$rootfs" -cf "$rootfs_tar.tmp" .
  mv "$rootfs_tar.tmp" "$rootfs_tar"
fi

ctr=$(buildah from scratch)
buildah add "$ctr" "$rootfs_tar" / >/dev/null
# pip (23.0, from Debian's ensurepip) reads certifi's bundle unless told otherwise.
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --cmd /bin/bash "$ctr"
buildah commit --quiet "$ctr" "$image" >/dev/null
buildah rm "$ctr" >/dev/null
echo "$image"
