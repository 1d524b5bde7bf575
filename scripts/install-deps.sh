#!/usr/bin/env bash
# Installs what Hangar needs on a Debian 12 host (as root): Debian packages, then the npm dependencies.
# Idempotent; quiet when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # VMM and image pipeline
  qemu-system-x86 qemu-utils debootstrap e2fsprogs linux-source-6.1 linux-config-6.1 bc bison flex libelf-dev build-essential
  xz-utils zstd lz4 lzop cpio iproute2 iptables kmod procps iputils-ping util-linux passwd
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

# The unprivileged user VMMs run as (config vmm.user): a system user, no login, no home. Made here because the
# hardened systemd unit sees /etc read-only; a controller started by hand makes it itself when it is missing.
if ! getent passwd hangar-vmm >/dev/null; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group hangar-vmm
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
