#!/usr/bin/env bash
# Installs what Hangar needs on a Debian 12 host (as root): Debian packages, then the npm dependencies.
# Idempotent; quiet when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # VMM and image pipeline
  qemu-system-x86 qemu-utils debootstrap e2fsprogs linux-source-6.1 linux-config-6.1 bc bison flex libelf-dev build-essential
  xz-utils zstd lz4 lzop cpio iproute2 iptables kmod procps iputils-ping
  # viewer tests and benchmark peers
  chromium websockify wrk xvfb x11vnc xterm scrot
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
