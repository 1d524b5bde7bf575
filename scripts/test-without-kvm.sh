#!/usr/bin/env bash
# Runs the tests (or any command) as on a host without /dev/kvm, on a host that has one: in a private mount
# namespace, /dev is covered by a tmpfs holding bind mounts of every /dev entry but kvm. Nothing changes outside that
# namespace: the host's /dev, and every other process (the main job's VMs), still see /dev/kvm. Root and unshare
# (util-linux) are needed where there is something to hide; where /dev/kvm is absent the command just runs.
# Network namespaces the tests make are mounted in that mount namespace only (their /run/netns names show outside).
#   scripts/test-without-kvm.sh [--dry-run] [COMMAND ARGS...]     (default COMMAND: npm test)
# --dry-run prints the plan and runs nothing. HANGAR_TEST_FILTER and the rest of the environment pass through.
# For the script's own test: HANGAR_DEV_DIR (default /dev) and HANGAR_HIDE_DEV_ENTRY (default kvm).
set -euo pipefail

dev=${HANGAR_DEV_DIR:-/dev}
hide=${HANGAR_HIDE_DEV_ENTRY:-kvm}
case "$hide" in '' | */* | . | ..) echo "HANGAR_HIDE_DEV_ENTRY must name one entry of $dev (got '$hide')" >&2; exit 2 ;; esac

# Inside the private mount namespace (the script re-runs itself there): rebuild $dev without $hide, then exec.
if [ "${1:-}" = __hangar_inside__ ]; then
  real=$2; shift 2
  mount --make-rprivate /
  mount --rbind "$dev" "$real"                       # the real /dev, still reachable while $dev is covered
  mount -t tmpfs -o mode=0755,nosuid hangar-dev "$dev"
  shopt -s dotglob nullglob
  for e in "$real"/*; do
    n=${e##*/}
    [ "$n" = "$hide" ] && continue
    if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$dev/$n"
    elif [ -d "$e" ]; then mkdir "$dev/$n"; mount --rbind "$e" "$dev/$n"   # pts, shm, net (tun), ...
    else : >"$dev/$n"; mount --bind "$e" "$dev/$n"                          # device nodes, sockets
    fi
  done
  umount -l "$real"
  if [ -e "$dev/$hide" ]; then echo "test-without-kvm: $dev/$hide is still visible" >&2; exit 1; fi
  echo "test-without-kvm: $dev/$hide hidden in this mount namespace; running: $*" >&2
  exec "$@"
fi

dry=0
if [ "${1:-}" = --dry-run ]; then dry=1; shift; fi
[ $# -gt 0 ] || set -- npm test

if [ ! -e "$dev/$hide" ] && [ ! -L "$dev/$hide" ]; then
  echo "test-without-kvm: there is no $dev/$hide on this host: nothing to hide; running: $*" >&2
  [ "$dry" = 1 ] && exit 0
  exec "$@"
fi

if [ "$dry" = 1 ]; then
  echo "unshare --mount --propagation private"
  echo "mount --rbind $dev REALDEV"
  echo "mount -t tmpfs $dev"
  shopt -s dotglob nullglob
  for e in "$dev"/*; do
    n=${e##*/}
    if [ "$n" = "$hide" ]; then echo "hide $dev/$n"
    elif [ -L "$e" ]; then echo "link $dev/$n -> $(readlink "$e")"
    elif [ -d "$e" ]; then echo "rbind $dev/$n"
    else echo "bind $dev/$n"
    fi
  done
  echo "run $*"
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "test-without-kvm: needs root (a private mount namespace over $dev)" >&2; exit 3; }
command -v unshare >/dev/null || { echo "test-without-kvm: needs unshare (util-linux)" >&2; exit 3; }
real=$(mktemp -d "${TMPDIR:-/tmp}/hangar-realdev.XXXXXX")
rc=0
unshare --mount --propagation private -- "$BASH" "$0" __hangar_inside__ "$real" "$@" || rc=$?
rmdir "$real" 2>/dev/null || true
exit "$rc"
