// Fault injection for the doctor's matrix. Every fault is applied to things the test owns: its own namespaces
// (ip -n / ip netns exec on the test's VM namespace, never the root namespace), its own VMs (a machine spec
// override), or a COPY of the image's rootfs (a guest hook written with debugfs -w). Each injector returns its undo.
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listImages, resolveImage, type ImageInfo } from '../../src/image/store.js';
import type { ImageSource } from '../../src/vm/manager.js';
import type { VmRecord } from '../../src/store/store.js';
import type { MachineSpec } from '../../src/vmm/types.js';
import { run } from '../../src/util/exec.js';
import { makeVariantImage } from './kernel-variants.js';
import { TEST_NETNS_PREFIX } from './net.js';

export type Undo = () => Promise<void>;

function ownNs(ns: string | undefined): string {
  if (!ns || !ns.startsWith(TEST_NETNS_PREFIX)) throw new Error(`refusing to inject a fault outside a test namespace (${ns ?? 'root namespace'})`);
  return ns;
}

const ip = (ns: string, args: string[]): Promise<unknown> => run('ip', ['-n', ownNs(ns), ...args], { timeoutMs: 10_000 });

/** `ip link set TAP down`: the TAP Hangar created for a VM, left down. */
export async function tapDown(ns: string, tap: string): Promise<Undo> {
  await ip(ns, ['link', 'set', tap, 'down']);
  return async () => { await ip(ns, ['link', 'set', tap, 'up']); };
}

/** `ip link set TAP nomaster`: the TAP taken off the bridge. */
export async function tapNoMaster(ns: string, tap: string, bridge: string): Promise<Undo> {
  await ip(ns, ['link', 'set', tap, 'nomaster']);
  return async () => { await ip(ns, ['link', 'set', tap, 'master', bridge]); };
}

/** `ip addr del GW/PREFIX dev BRIDGE`: the bridge without its gateway address. */
export async function bridgeWithoutGateway(ns: string, bridge: string, cidr: string): Promise<Undo> {
  await ip(ns, ['addr', 'del', cidr, 'dev', bridge]);
  return async () => { await ip(ns, ['addr', 'replace', cidr, 'dev', bridge]); };
}

export interface BrNetfilterState {
  /** br_netfilter's sysctls exist in the namespace (built in, or the module is loaded). */
  active: boolean;
  /** This helper loaded the module (and its undo unloads it). */
  loadedHere: boolean;
  /** Why it is not active, when it is not. */
  reason?: string;
}

const BRIDGE_SYSCTL = '/proc/sys/net/bridge/bridge-nf-call-iptables';

/**
 * The FORWARD policy DROP inside the test's VM namespace (iptables is per namespace), with br_netfilter handing
 * bridged IPv4 to iptables there (bridge-nf-call-iptables=1, a per-namespace sysctl). br_netfilter is a host-wide
 * kernel module: it is loaded only when absent, and unloaded by the undo only if it was loaded here.
 */
export async function forwardDropWithBrNetfilter(ns: string): Promise<{ undo: Undo; brNetfilter: BrNetfilterState }> {
  ownNs(ns);
  const present = async (): Promise<boolean> => (await run('test', ['-e', BRIDGE_SYSCTL], { netns: ns, allowFailure: true })).code === 0;
  const br: BrNetfilterState = { active: await present(), loadedHere: false };
  if (!br.active) {
    const m = await run('modprobe', ['br_netfilter'], { allowFailure: true, timeoutMs: 30_000 });
    br.loadedHere = m.code === 0;
    br.active = await present();
    if (!br.active) br.reason = `br_netfilter is not available on this kernel (${m.stderr.trim().split('\n').at(-1) ?? `modprobe exit ${m.code}`})`;
  }
  const undos: Undo[] = [];
  if (br.loadedHere) undos.push(async () => { await run('modprobe', ['-r', 'br_netfilter'], { allowFailure: true, timeoutMs: 30_000 }); });
  try {
    if (br.active) {
      const before = (await run('sysctl', ['-n', 'net.bridge.bridge-nf-call-iptables'], { netns: ns })).stdout.trim();
      await run('sysctl', ['-q', '-w', 'net.bridge.bridge-nf-call-iptables=1'], { netns: ns });
      undos.push(async () => { await run('sysctl', ['-q', '-w', `net.bridge.bridge-nf-call-iptables=${before}`], { netns: ns }); });
    }
    const policy = /-P FORWARD (\S+)/.exec((await run('iptables', ['-S', 'FORWARD'], { netns: ns })).stdout)?.[1] ?? 'ACCEPT';
    await run('iptables', ['-P', 'FORWARD', 'DROP'], { netns: ns });
    undos.push(async () => { await run('iptables', ['-P', 'FORWARD', policy], { netns: ns }); });
  } catch (e) {
    for (const u of undos.reverse()) await u().catch(() => undefined);
    throw e;
  }
  return { undo: async () => { for (const u of undos.reverse()) await u(); }, brNetfilter: br };
}

/** Drops the VM namespace's neighbour entry for IP (a fault's VM is gone; its address must not keep its MAC). */
export async function forgetNeighbour(ns: string, ipAddr: string, dev: string): Promise<void> {
  await run('ip', ['-n', ownNs(ns), 'neigh', 'del', ipAddr, 'dev', dev], { allowFailure: true, timeoutMs: 10_000 });
}

// ---- machine spec overrides (boot-argument and identity faults)

export type SpecEdit = (spec: MachineSpec) => MachineSpec;

/** A ManagerOptions.specOverride whose edits are registered per VM name, so one controller serves every fault. */
export function specOverrides(): { specOverride: (spec: MachineSpec, vm: VmRecord) => MachineSpec; set: (vmName: string, edit: SpecEdit) => void } {
  const edits = new Map<string, SpecEdit>();
  return { specOverride: (spec, vm) => edits.get(vm.name)?.(spec) ?? spec, set: (name, edit) => { edits.set(name, edit); } };
}

/** Appends kernel arguments (the kernel takes the last root=). */
export const appendBootArgs = (...args: string[]): SpecEdit => (spec) => ({ ...spec, bootArgs: `${spec.bootArgs} ${args.join(' ')}` });
/** Starts the VM's NIC with another MAC than its allocation. */
export const withMac = (mac: string): SpecEdit => (spec) => ({ ...spec, net: { ...spec.net!, mac } });

// ---- rootfs variants (guest faults)

export interface GuestHook {
  /** File name under /etc/hangar/init.d/ (must end in .sh: the init sources *.sh before READY). */
  name: string;
  script: string;
}

/**
 * An image whose rootfs is a sparse COPY of BASE's with HOOKS written into /etc/hangar/init.d by debugfs -w (no
 * mount). The published image is never touched.
 */
export async function rootfsVariant(base: ImageInfo, parent: string, id: string, hooks: readonly GuestHook[]): Promise<ImageInfo> {
  await mkdir(parent, { recursive: true });
  const copy = join(parent, `${id}.rootfs.ext4`);
  await run('cp', ['--sparse=always', '--reflink=auto', base.rootfsPath, copy], { timeoutMs: 120_000 });
  await chmod(copy, 0o644);
  for (const h of hooks) {
    if (!/^[\w.-]+\.sh$/.test(h.name)) throw new Error(`hook name ${h.name}: letters, digits, . _ - and .sh only`);
    const src = join(parent, `${id}.${h.name}`);
    await writeFile(src, h.script, { mode: 0o755 });
    const r = await run('debugfs', ['-w', '-R', `write ${src} /etc/hangar/init.d/${h.name}`, copy], { timeoutMs: 30_000 });
    if (/error|not found|Could not/i.test(r.stderr.replace(/^debugfs [\d.]+ \([^)]*\)\s*/, ''))) throw new Error(`debugfs write ${h.name}: ${r.stderr}`);
    await rm(src, { force: true });
  }
  const check = await run('e2fsck', ['-fn', copy], { allowFailure: true, timeoutMs: 60_000 });
  if (check.code !== 0) throw new Error(`the rootfs copy with hooks fails e2fsck -fn (exit ${check.code}): ${check.stdout.slice(-400)}`);
  const img = await makeVariantImage(base, parent, id, { rootfs: copy });
  await rm(copy, { force: true }); // the image directory holds a hard link to it
  return img;
}

/** An ImageSource that knows the test's variant images, then the image cache. */
export function variantSource(variants: () => readonly ImageInfo[]): ImageSource {
  return {
    resolve: async (ref) => variants().find((v) => v.id === ref) ?? resolveImage(ref),
    list: async () => [...variants(), ...(await listImages())],
  };
}

// ---- guest hooks

/**
 * A guest service that re-addresses eth0 after boot (what a DHCP client taking another lease does), then talks to
 * its gateway from the new address. It starts once the guest sees its first ICMP echo (the test's trigger, so the
 * controller's own readiness check is over), and says on the console what it did (the test waits for that line).
 */
export const READDRESS_HOOK: GuestHook = {
  name: '50-test-readdress.sh',
  script: `# Test fault (hangar doctor matrix): a guest service that re-addresses eth0 after boot.
in_echos() {
  local line; local -a k v
  while read -r line; do
    case $line in "Icmp: InMsgs"*) read -r -a k <<<"$line" ;; "Icmp: "[0-9]*) read -r -a v <<<"$line" ;; esac
  done </proc/net/snmp
  for i in "\${!k[@]}"; do [ "\${k[i]}" = InEchos ] && { echo "\${v[i]:-0}"; return; }; done
  echo 0
}
(
  for ((n = 0; n < 3000; n++)); do [ "$(in_echos)" -gt 0 ] && break; nap 0.2; done
  read -r _ _ _ old _ <<<"$(ip -4 -o addr show dev eth0)"
  read -r _ _ gw _ <<<"$(ip -4 route show default)"
  a=\${old%/*}; p=\${old#*/}; last=\${a##*.}
  new="\${a%.*}.$(( (last + 100) % 250 + 2 ))"
  ip addr flush dev eth0
  ip addr add "$new/$p" dev eth0
  ip route add default via "$gw" dev eth0
  echo "test-fault: eth0 re-addressed from $old to $new/$p" >/dev/console
  # Like a DHCP client checking its new lease: reach the gateway from the new address.
  (exec 3<>"/dev/tcp/$gw/9") 2>/dev/null
) </dev/null >/dev/null 2>&1 &
`,
};

/** The VNC server dies as it starts (killed as soon as it shows up), so nothing listens on 5900. */
export const NO_VNC_HOOK: GuestHook = {
  name: '50-test-no-vnc.sh',
  script: `# Test fault (hangar doctor matrix): the VNC server does not run.
for ((n = 0; n < 600; n++)); do
  for p in /proc/[0-9]*; do
    read -r comm 2>/dev/null <"$p/comm" || continue # stderr first: a process gone since the glob must say nothing
    if [ "$comm" = x11vnc ]; then
      kill -9 "\${p#/proc/}"
      echo "test-fault: x11vnc pid \${p#/proc/} killed"
      break 2
    fi
  done
  nap 0.1
done
`,
};

/**
 * The virtio-mmio DMA warning on a healthy guest. Linux 6.1 prints it only for a platform device without a DMA
 * mask, which this kernel never creates (every platform device gets one since 5.x), so the hook logs the exact
 * text of drivers/virtio/virtio_mmio.c through /dev/kmsg at warning level, once per virtio-mmio device.
 */
export const DMA_WARNING_HOOK: GuestHook = {
  name: '50-test-dma-warning.sh',
  script: `# Test case (hangar doctor matrix): the virtio-mmio DMA warning on a healthy guest.
for d in /sys/bus/platform/devices/virtio-mmio.*; do
  echo "<4>virtio-mmio \${d##*/}: Failed to enable 64-bit or 32-bit DMA.  Trying to continue, but this might not work." >/dev/kmsg
done
`,
};

// ---- waiting on a VM

/** Waits until the console log of a VM matches RE (or the timeout). Returns the matching line. */
export async function waitConsole(path: string, re: RegExp, timeoutMs = 120_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '');
    const line = text.split('\n').find((l) => re.test(l));
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`console ${path} did not show ${re} within ${timeoutMs} ms; tail:\n${text.split('\n').slice(-15).join('\n')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
