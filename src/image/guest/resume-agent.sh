# Hangar resume agent. Sourced by hangar-init from /etc/hangar/init.d/ (as root, before READY); it starts itself in
# the background. The host side is src/vmm/qemu/agent.ts.
#
# After a snapshot restore (a clone, or a hibernated VM resumed) the guest's clock and random state are those of
# the instant the snapshot was taken, and every clone of one snapshot shares them. Right after resuming the guest,
# the host writes one line into the virtio-serial port "org.hangar.agent":
#     sync <unix seconds>.<milliseconds> <128 hex digits of fresh host randomness>
# preceded by "host <hostname>" (a clone gets its own hostname; older agents skip the line), and this agent:
# sets the hostname; sets the clock; adds the bytes to the kernel's pool with credit and forces a CRNG reseed
# (RNDADDENTROPY, RNDRESEEDCRNG: what Firecracker's random-for-clones note recommends); forgets neighbour entries
# learned before the snapshot (a clone's gateway lives in another namespace); prints HANGAR-RESUMED on the console;
# answers "ok <its clock>" on the port. Idle, it forks nothing: one open port and bash builtins.
hangar_resume_agent() {
  local p n dev="" line now host
  for p in /sys/class/virtio-ports/*; do
    [ -r "$p/name" ] || continue
    read -r n <"$p/name" || continue
    [ "$n" = org.hangar.agent ] && dev=/dev/${p##*/}
  done
  [ -n "$dev" ] && [ -c "$dev" ] || { echo "hangar-agent: no org.hangar.agent port; resume sync off"; return 0; }
  # Held open for good: the host's bytes queue in the guest even when this loop is between reads.
  exec 7<>"$dev" || return 0
  mkfifo /run/hangar-agent.wait 2>/dev/null
  exec 6<>/run/hangar-agent.wait || return 0
  echo "hangar-agent: listening on $dev"
  while :; do
    if read -r -u 7 line; then
      if [[ $line =~ ^host\ ([a-z0-9][a-z0-9-]{0,62})$ ]]; then
        echo "${BASH_REMATCH[1]}" >/proc/sys/kernel/hostname
        continue
      fi
      [[ $line =~ ^sync\ ([0-9]{9,11}\.[0-9]{3})\ ([0-9a-f]{128})$ ]] || continue
      date -u -s "@${BASH_REMATCH[1]}" >/dev/null 2>&1
      # struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
      perl -e 'my $b = pack("H*", $ARGV[0]); open(my $f, "+<", "/dev/urandom") or exit 1;
        ioctl($f, 0x40085203, pack("ii", 8 * length($b), length($b)) . $b) or exit 2;
        ioctl($f, 0x5207, 0) or exit 3;' "${BASH_REMATCH[2]}" || echo "hangar-agent: reseed failed ($?)"
      ip neigh flush all >/dev/null 2>&1
      now=$(date +%s.%N)
      read -r host </proc/sys/kernel/hostname
      echo "HANGAR-RESUMED $now $host"
      printf 'ok %s\n' "$now" >&7
    else
      # The host is not connected: the port reads as end-of-file at once. Wait half a second without a fork.
      read -r -t 0.5 -u 6 _
    fi
  done
}
hangar_resume_agent &
