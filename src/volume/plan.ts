// What each volume operation does, as data: the host commands (argv arrays) that make, grow and copy a volume's
// ext4 file, the QMP commands that swap a VM's volume slot onto a file without a reboot, and the guest script that
// mounts it. Pure: the service (service.ts) runs these plans; tests read them.
//
// The slot swap, measured on QEMU 7.2 microvm (virtio-mmio: no hotplug there): every QEMU VM boots with
// VOLUME_SLOTS virtio-blk devices whose format node (raw, `vol<N>`) sits on a 0-byte null-co node. Attaching
// blockdev-adds a file node, `blockdev-reopen`s the raw node with file = the new node, and `block_resize`s it to
// the file's size: the guest logs "vdb: detected capacity change from 0 to …" and can mount it at once. The old
// file node is then deleted. Detaching is the same swap back onto a fresh 0-byte null-co node, without a resize
// (null-co cannot be resized; the guest unmounted the disk first and its stale size reads nothing).
// A read-only attachment is read-only in the guest's mount only: QEMU refuses to reopen the node of a read-write
// virtio-blk device read-only ("cannot support read-write users"), so each volume is in one VM at a time, reader or
// writer. QEMU's own image locks back that up: a second QEMU cannot take the file's write lock.
import { GUEST_USER } from '../image/plan.js';

export const MiB = 1024 * 1024;

/** One host command. */
export interface HostStep {
  cmd: string;
  args: string[];
}

/** One QMP command. */
export interface QmpStep {
  execute: string;
  arguments: Record<string, unknown>;
}

/** The raw (format) node of a slot: the virtio-blk device's drive; it stays while its file node is swapped. */
export const slotNode = (slot: number): string => `vol${slot}`;
/** The serial the guest sees in /sys/block/vdX/serial: how the mount script finds the slot's disk. */
export const slotSerial = (slot: number): string => `hvol${slot}`;
/** The null-co node a slot boots with. */
export const slotNullNode = (slot: number): string => `vol${slot}-null`;

/** ext4's label holds 16 bytes. */
const label = (name: string): string => name.slice(0, 16);

/** A new volume: a sparse file of the size limit, then ext4 on it, its root owned by the desktop user. */
export function planCreate(file: string, name: string, sizeMiB: number): HostStep[] {
  return [
    { cmd: 'truncate', args: ['-s', `${sizeMiB}M`, file] },
    // -m 0: no blocks reserved for root (a data volume); lazy init keeps creation instant on a sparse file.
    { cmd: 'mkfs.ext4', args: ['-q', '-F', '-m', '0', '-L', label(name), '-E', `root_owner=${GUEST_USER.uid}:${GUEST_USER.uid},lazy_itable_init=1,lazy_journal_init=1`, file] },
  ];
}

/**
 * Growing a volume's file and filesystem. Offline (not attached): truncate, fsck (resize2fs wants a clean fs),
 * resize2fs on the host. Online (attached to a running VM): truncate on the host; the caller then block_resizes the
 * slot and runs resize2fs on the mounted device in the guest (ext4 grows online).
 */
export function planGrow(file: string, sizeMiB: number, online: boolean): HostStep[] {
  const truncate = { cmd: 'truncate', args: ['-s', `${sizeMiB}M`, file] };
  if (online) return [truncate];
  return [truncate, { cmd: 'e2fsck', args: ['-f', '-p', file] }, { cmd: 'resize2fs', args: [file] }];
}

/** A snapshot: a copy of the file, a reflink where the filesystem can (instant, shares blocks), sparse otherwise. */
export function planCopy(from: string, to: string): HostStep[] {
  return [{ cmd: 'cp', args: ['--reflink=auto', '--sparse=always', from, to] }];
}

/** The QMP commands that put `file` (of `sizeBytes`) into `slot`, replacing its current file node `oldNode`. */
export function planSwapIn(slot: number, file: string, sizeBytes: number, newNode: string, oldNode: string): QmpStep[] {
  return [
    { execute: 'blockdev-add', arguments: { driver: 'file', filename: file, 'node-name': newNode } },
    { execute: 'blockdev-reopen', arguments: { options: [{ driver: 'raw', 'node-name': slotNode(slot), file: newNode }] } },
    // Same size as the file: no truncation, but the device tells the guest its new capacity.
    { execute: 'block_resize', arguments: { 'node-name': slotNode(slot), size: sizeBytes } },
    { execute: 'blockdev-del', arguments: { 'node-name': oldNode } },
  ];
}

/** The swap back: the slot onto a new empty null-co node; the file is closed. */
export function planSwapOut(slot: number, newNode: string, oldNode: string): QmpStep[] {
  return [
    { execute: 'blockdev-add', arguments: { driver: 'null-co', 'node-name': newNode, size: 0 } },
    { execute: 'blockdev-reopen', arguments: { options: [{ driver: 'raw', 'node-name': slotNode(slot), file: newNode }] } },
    { execute: 'blockdev-del', arguments: { 'node-name': oldNode } },
  ];
}

/** Online growth: the slot's new size reaches the guest (the file was truncated first). */
export function planSlotResize(slot: number, sizeBytes: number): QmpStep[] {
  return [{ execute: 'block_resize', arguments: { 'node-name': slotNode(slot), size: sizeBytes } }];
}

/**
 * Closes a guest Chromium the way its own Quit does: CDP `Browser.close` on its DevTools port (bash; $1 the port;
 * exit 0 once sent and Chromium has closed the connection, non-zero if it could not be asked). Measured (host
 * Chromium 156, a cookie set, then the browser stopped at once): after a SIGTERM the cookie was on disk in 2 of 15
 * tries (the network service commits its cookie store every 30 s, and a SIGTERM does not wait for it), after
 * Browser.close in 12 of 12 (9 of them through this script). One text frame over a raw WebSocket (bash's
 * /dev/tcp; a client frame must be masked: the all-zero mask leaves the payload as it is). Bounded: 5 s per read,
 * 10 s for Chromium to go.
 */
export const CDP_CLOSE_SCRIPT = String.raw`port=$1
exec 3<>/dev/tcp/127.0.0.1/$port || exit 1
printf 'GET /json/version HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$port" >&3
ws=""
while IFS= read -r -t 5 line <&3; do
  case "$line" in *webSocketDebuggerUrl*) ws=$(printf %s "$line" | sed -n 's|.*"ws://[^/"]*\(/[^"]*\)".*|\1|p'); break ;; esac
done
exec 3<&-
[ -n "$ws" ] || exit 2
exec 3<>/dev/tcp/127.0.0.1/$port || exit 1
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: aGFuZ2FyLWNsb3NlLWtleQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' "$ws" "$port" >&3
IFS= read -r -t 5 status <&3 || exit 3
case "$status" in *' 101 '*) ;; *) exit 3 ;; esac
msg='{"id":1,"method":"Browser.close"}'
printf "\\x81\\x$(printf %02x $((128 + ${'$'}{#msg})))\\x00\\x00\\x00\\x00%s" "$msg" >&3
timeout 10 cat <&3 >/dev/null
exit 0
`;

/**
 * The guest side, one script run by the agent as root with its arguments as positional parameters (never spliced
 * into the text): $1 the slot's serial, $2 the mount point, $3 "ro" or "rw", $4 the action (mount, umount, release,
 * grow). It waits (up to 10 s) for the disk to show its capacity, is idempotent (mounted already: nothing to do), and
 * prints the device it used.
 *
 * Chromium (browser images) is started by the guest init before any volume can be mounted. When the mount point is
 * its user data dir (`--user-data-dir`, else `$HOME/.config/chromium`), above it or inside it, the script stops the
 * browser process cleanly (CDP_CLOSE_SCRIPT, $5, when it has a DevTools port; else, or if it is still there 20 s on,
 * SIGTERM; 10 s later SIGKILL; how it went is appended to /run/hangar/chromium.log), mounts, removes the profile's
 * Singleton* lock files (left by the VM that held the volume last; one VM at a time has it), starts the same argv
 * with the same environment as the same user again, and waits (up to 30 s) for its DevTools port to listen: the
 * Chromium the user meets runs on the volume from its start. umount stops it the same way (an open profile would
 * make the unmount fail) and starts it again on the image's directory; release (a VM being destroyed) does not.
 */
export const GUEST_SCRIPT = `set -eu
serial="$1"; at="$2"; mode="$3"; action="$4"; cdp_close="\${5:-}"
dev=""
i=0
while [ $i -lt 100 ]; do
  for d in /sys/block/vd*; do
    if [ "$(cat "$d/serial" 2>/dev/null)" = "$serial" ] && [ "$(cat "$d/size")" != 0 ]; then dev="/dev/\${d##*/}"; fi
  done
  if [ -n "$dev" ] || [ "$action" = umount ] || [ "$action" = release ]; then break; fi
  i=$((i+1)); sleep 0.1
done
mounted() { grep -q " $at ext4 " /proc/mounts; }
saved=/run/hangar-volume-chromium.$$
browser=""
find_browser() {
  browser=""
  for p in /proc/[0-9]*; do
    read -r comm 2>/dev/null <"$p/comm" || continue
    [ "$comm" = chromium ] || continue
    args=$(tr '\\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    case "$args" in *--type=*|"") continue ;; esac
    udd=$(tr '\\0' '\\n' <"$p/cmdline" | sed -n 's/^--user-data-dir=//p' | tail -n 1)
    if [ -z "$udd" ]; then
      home=$(tr '\\0' '\\n' <"$p/environ" | sed -n 's/^HOME=//p' | tail -n 1)
      [ -n "$home" ] || continue
      udd="$home/.config/chromium"
    fi
    case "$udd/" in "$at"/*) browser=\${p#/proc/} ;; esac
    case "$at/" in "$udd"/*) browser=\${p#/proc/} ;; esac
    [ -n "$browser" ] && return 0
  done
  return 0
}
any_chromium() {
  for p in /proc/[0-9]*; do
    read -r comm 2>/dev/null <"$p/comm" && [ "$comm" = chromium ] || continue
    read -r st 2>/dev/null <"$p/stat" || continue
    case "$st" in *") Z "*) continue ;; esac
    return 0
  done
  return 1
}
stop_browser() {
  find_browser
  [ -n "$browser" ] || return 0
  uid=$(sed -n 's/^Uid:[[:space:]]*\\([0-9]*\\).*/\\1/p' "/proc/$browser/status")
  { printf 'env\\0-i\\0'; cat "/proc/$browser/environ"; cat "/proc/$browser/cmdline"; } >"$saved"
  echo "$uid" >"$saved.uid"
  port=$(tr '\\0' '\\n' <"/proc/$browser/cmdline" | sed -n 's/^--remote-debugging-port=//p' | tail -n 1)
  how=""
  if [ -n "$port" ] && [ -n "$cdp_close" ] && bash --norc -c "$cdp_close" cdp-close "$port" 2>/dev/null; then
    how=cdp; j=0
    while any_chromium && [ $j -lt 200 ]; do j=$((j+1)); sleep 0.1; done
  fi
  if any_chromium; then
    how="\${how:+$how, then }SIGTERM"
    kill -TERM "$browser" 2>/dev/null || true
    j=0
    while any_chromium && [ $j -lt 100 ]; do j=$((j+1)); sleep 0.1; done
  fi
  if any_chromium; then
    how="$how, then SIGKILL"
    for p in /proc/[0-9]*; do read -r comm 2>/dev/null <"$p/comm" && [ "$comm" = chromium ] && { kill -KILL "\${p#/proc/}" 2>/dev/null || true; }; done
    j=0
    while any_chromium && [ $j -lt 50 ]; do j=$((j+1)); sleep 0.1; done
  fi
  echo "hangar-volume: chromium $browser stopped ($how) for $action of $at" >>/run/hangar/chromium.log 2>/dev/null || true
  return 0
}
start_browser() {
  [ -s "$saved" ] || return 0
  uid=$(cat "$saved.uid")
  xargs -0 -a "$saved" setsid -f setpriv --reuid="$uid" --regid="$uid" --init-groups </dev/null >>/run/hangar/chromium.log 2>&1
  port=$(tr '\\0' '\\n' <"$saved" | sed -n 's/^--remote-debugging-port=//p' | tail -n 1)
  rm -f "$saved" "$saved.uid"
  [ -n "$port" ] || return 0
  hex=$(printf '%04X' "$port")
  j=0
  while [ $j -lt 300 ]; do
    grep -q "^ *[0-9]*: [0-9A-F]*:$hex [0-9A-F]*:0000 0A" /proc/net/tcp /proc/net/tcp6 2>/dev/null && return 0
    j=$((j+1)); sleep 0.1
  done
  echo "chromium did not listen on $port again within 30 s" >&2
}
case "$action" in
  mount)
    [ -n "$dev" ] || { echo "no disk with serial $serial" >&2; exit 3; }
    if mounted; then echo "$dev"; exit 0; fi
    stop_browser
    mkdir -p "$at"
    if ! mount -t ext4 -o "$mode,noatime" "$dev" "$at"; then start_browser; exit 32; fi
    if [ -s "$saved" ] && [ "$mode" = rw ]; then
      for l in "$at" "$at/.config/chromium" "$at/chromium"; do rm -f "$l/SingletonLock" "$l/SingletonSocket" "$l/SingletonCookie"; done
    fi
    start_browser
    echo "$dev" ;;
  umount|release)
    if mounted; then
      stop_browser
      sync; umount "$at"
      [ "$action" = release ] || start_browser
    fi ;;
  grow)
    [ -n "$dev" ] || { echo "no disk with serial $serial" >&2; exit 3; }
    resize2fs "$dev" >&2
    echo "$dev" ;;
esac
`;

export type GuestAction = 'mount' | 'umount' | 'release' | 'grow';

/** The agent's exec request for one guest action. */
export function guestArgv(slot: number, path: string, readOnly: boolean, action: GuestAction): string[] {
  return ['/bin/sh', '-c', GUEST_SCRIPT, 'hangar-volume', slotSerial(slot), path, readOnly ? 'ro' : 'rw', action, CDP_CLOSE_SCRIPT];
}
