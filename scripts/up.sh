#!/usr/bin/env bash
# The main job until the controller exists: install what Hangar needs, build it, build (or reuse) the desktop
# image, and say how it boots. Run as root on a Debian 12 host. Extra arguments go to `hangar image build`
# (e.g. --profile browser, --force).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
npm run build --silent
node bin/hangar.js image build "$@"

# Describe the image just built (newest of its profile) and the boot it is made for.
profile=desktop
prev=""
for a in "$@"; do
  if [ "$prev" = "--profile" ]; then profile="$a"; fi
  case "$a" in --profile=*) profile="${a#--profile=}" ;; esac
  prev="$a"
done
node --input-type=module - "$profile" <<'JS'
import { resolveImage } from './dist/src/image/index.js';
const img = await resolveImage(process.argv[2]);
const m = img.manifest;
console.log(`
image     ${img.id} (${img.profile}), created ${img.created}
kernel    ${img.kernelPath}  (Linux ${img.kernelVersion}, uncompressed vmlinux with the PVH note; lint ok: ${Object.entries(m.kernel.lint).map(([v, r]) => `${v}=${r.ok}`).join(' ')})
rootfs    ${img.rootfsPath}  (${(img.sizes.rootfs / 2 ** 20).toFixed(0)} MiB ext4, Debian ${m.rootfs.suite}, ${m.rootfs.packages.length} packages)
manifest  ${img.manifestPath}

How it will boot (the VM driver wires this up; until then, by hand inside a network namespace you create):
  qemu-system-x86_64 -M microvm,acpi=off,x-option-roms=off,rtc=on -m 512 -smp 1 -nodefaults -no-user-config -display none \\
    -serial file:console.log -kernel ${img.kernelPath} \\
    -append "${m.guest.cmdline} ip=GUEST::GATEWAY:NETMASK::eth0:off" \\
    -drive id=root,file=${img.rootfsPath},format=raw,if=none,snapshot=on -device virtio-blk-device,drive=root \\
    -netdev tap,id=n0,ifname=TAP,script=no,downscript=no -device virtio-net-device,netdev=n0 -device virtio-rng-device
  (Firecracker: the same vmlinux as kernel_image_path, the same boot_args, rootfs as the root drive, plus an entropy device.)
  The console prints ${m.guest.initMarker}, "HANGAR-NET eth0 ADDR", then ${m.guest.readyMarker} once VNC answers on TCP ${m.guest.vncPort}.
`);
JS
