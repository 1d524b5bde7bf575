// The thin executor for host networking: iproute2 through run(), argument arrays only. Every change it makes
// returns its undo. Two modes (see config.ts): 'bridge' puts the bridge and TAPs on the host side; 'netns' puts
// them in a namespace Hangar owns and joins that namespace to the host with a veth pair and one route.
// "The host side" is the root namespace in production, or `cfg.hostNetns` (tests use a namespace as a fake host,
// so the real root namespace is never touched).
import { HangarError, toHangarError } from '../errors.js';
import { run } from '../util/exec.js';
import type { Progress } from '../util/progress.js';
import { runSteps, type Step, type Undo, type UndoStack } from '../util/steps.js';
import { tapOwnerArgs, type NetConfig } from './config.js';
import { isolatePort, setupWalls } from './egress/nft.js';
import type { VmNetPlan } from './plan.js';

export interface NetExecOptions {
  progress?: Progress;
}

interface LinkInfo {
  ifname: string;
  flags?: string[];
  master?: string;
  operstate?: string;
  linkinfo?: { info_kind?: string };
}

/** `ip` in a namespace (undefined = the namespace Hangar runs in). */
async function ip(ns: string | undefined, args: string[], allowFailure = false): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run('ip', ns ? ['-n', ns, ...args] : args, { allowFailure, timeoutMs: 15_000 });
}

export async function listNetns(): Promise<string[]> {
  const r = await run('ip', ['-j', 'netns', 'list'], { timeoutMs: 15_000 });
  const text = r.stdout.trim();
  if (!text) return [];
  return (JSON.parse(text) as { name: string }[]).map((n) => n.name);
}

async function links(ns: string | undefined): Promise<Map<string, LinkInfo>> {
  const r = await ip(ns, ['-d', '-j', 'link', 'show']);
  const list = JSON.parse(r.stdout.trim() || '[]') as LinkInfo[];
  return new Map(list.map((l) => [l.ifname, l]));
}

/** Where the VM-facing side (bridge, TAPs) lives. */
function vmSide(cfg: NetConfig): string | undefined {
  return cfg.mode === 'netns' ? cfg.netns : cfg.hostNetns;
}

function setupFailed(step: string, e: unknown): HangarError {
  const h = toHangarError(e, 'NET_SETUP_FAILED');
  if (h.code === 'NET_SETUP_FAILED' || h.code === 'MISSING_HOST_TOOLS') return h;
  return new HangarError('NET_SETUP_FAILED', `network step "${step}" failed: ${h.message}`, { step, ...h.details }, { cause: e });
}

/** Wraps each step so a failure names the step, then runs them with rollback. */
async function runNetSteps(steps: Step<null>[], opts: NetExecOptions): Promise<UndoStack> {
  const wrapped = steps.map((s): Step<null> => ({
    name: s.name,
    run: async (ctx) => {
      try {
        return await s.run(ctx);
      } catch (e) {
        throw setupFailed(s.name, e);
      }
    },
  }));
  const { stack } = await runSteps(wrapped, null, opts.progress);
  return stack;
}

function undoOf(stack: UndoStack, what: string): Undo {
  return async () => {
    const errors = await stack.unwind();
    if (errors.length) {
      throw new HangarError('NET_SETUP_FAILED', `undoing ${what} failed: ${errors.map((e) => `${e.name}: ${e.error instanceof Error ? e.error.message : String(e.error)}`).join('; ')}`, {
        steps: errors.map((e) => e.name),
      });
    }
  };
}

/** The bridge's MAC, from its gateway address: locally administered, stable across restarts. Pure. */
export function bridgeMac(gateway: string): string {
  const o = gateway.split('.').map(Number);
  return ['02', '68', '67', ...o.slice(1).map((n) => n.toString(16).padStart(2, '0'))].join(':');
}

function bridgeSteps(cfg: NetConfig, ns: string | undefined): Step<null>[] {
  return [
    {
      name: `bridge ${cfg.bridge}`,
      run: async () => {
        const existing = (await links(ns)).get(cfg.bridge);
        if (existing && existing.linkinfo?.info_kind !== 'bridge') {
          throw new HangarError('NET_SETUP_FAILED', `${cfg.bridge} exists and is not a bridge (${existing.linkinfo?.info_kind ?? 'unknown kind'})`, { link: cfg.bridge });
        }
        if (existing) return; // adopted from an earlier run: not ours to delete
        // A fixed MAC: a bridge without one takes its lowest port's, so it changed whenever a TAP came or went and
        // guests (and snapshots, which keep the gateway's MAC) sent to a MAC nobody answered until ARP re-probed.
        await ip(ns, ['link', 'add', cfg.bridge, 'address', bridgeMac(cfg.gateway), 'type', 'bridge']);
        return async () => { await ip(ns, ['link', 'del', cfg.bridge], true); };
      },
    },
    {
      name: `bridge ${cfg.bridge} address ${cfg.gateway}/${cfg.prefix}`,
      run: async () => {
        await ip(ns, ['addr', 'replace', `${cfg.gateway}/${cfg.prefix}`, 'dev', cfg.bridge]);
        await ip(ns, ['link', 'set', cfg.bridge, 'up']);
      },
    },
  ];
}

/** Hangar's firewall table where the bridge lives (src/net/egress/): VMs isolated, egress by policy. */
function wallsStep(cfg: NetConfig): Step<null> {
  return { name: `VM firewall (nft table inet hangar) on ${cfg.bridge}`, run: () => setupWalls(cfg) };
}

/**
 * Creates what is missing of the host network and returns the undo of exactly what it created (idempotent: an
 * existing namespace/bridge/veth from a running Hangar is adopted, not recreated, and its undo leaves it alone).
 */
export async function setupHostNetwork(cfg: NetConfig, opts: NetExecOptions = {}): Promise<Undo> {
  const steps: Step<null>[] = [];
  if (cfg.hostNetns !== undefined) {
    steps.push({
      name: `host namespace ${cfg.hostNetns} exists`,
      run: async () => {
        if (!(await listNetns()).includes(cfg.hostNetns!)) {
          throw new HangarError('NET_SETUP_FAILED', `the host-side namespace ${cfg.hostNetns} does not exist`, { netns: cfg.hostNetns });
        }
      },
    });
  }
  if (cfg.mode === 'bridge') {
    steps.push(...bridgeSteps(cfg, cfg.hostNetns), wallsStep(cfg));
    return undoOf(await runNetSteps(steps, opts), 'the host bridge');
  }

  const ns = cfg.netns!;
  const hl = cfg.hostLink!;
  const host = cfg.hostNetns;
  steps.push(
    {
      name: `namespace ${ns}`,
      run: async () => {
        if ((await listNetns()).includes(ns)) return;
        await run('ip', ['netns', 'add', ns], { timeoutMs: 15_000 });
        return async () => { await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 15_000 }); };
      },
    },
    { name: `namespace ${ns} loopback up`, run: async () => { await ip(ns, ['link', 'set', 'lo', 'up']); } },
    ...bridgeSteps(cfg, ns),
    {
      name: `veth ${hl.hostIfname} <-> ${ns}/${hl.nsIfname}`,
      run: async () => {
        const hostEnd = (await links(host)).get(hl.hostIfname);
        const nsEnd = (await links(ns)).get(hl.nsIfname);
        if (hostEnd && nsEnd) return;
        if (hostEnd || nsEnd) {
          throw new HangarError('NET_SETUP_FAILED', `half a veth pair exists (${hostEnd ? hl.hostIfname : `${ns}/${hl.nsIfname}`}); remove it and retry`, { link: hostEnd ? hl.hostIfname : hl.nsIfname });
        }
        await ip(host, ['link', 'add', hl.hostIfname, 'type', 'veth', 'peer', 'name', hl.nsIfname, 'netns', ns]);
        return async () => { await ip(host, ['link', 'del', hl.hostIfname], true); };
      },
    },
    {
      name: `veth addresses ${hl.hostAddress} / ${hl.nsAddress}`,
      run: async () => {
        await ip(ns, ['addr', 'replace', `${hl.nsAddress}/${hl.prefix}`, 'dev', hl.nsIfname]);
        await ip(ns, ['link', 'set', hl.nsIfname, 'up']);
        await ip(host, ['addr', 'replace', `${hl.hostAddress}/${hl.prefix}`, 'dev', hl.hostIfname]);
        await ip(host, ['link', 'set', hl.hostIfname, 'up']);
      },
    },
    {
      name: `route ${cfg.cidr} via ${hl.nsAddress}`,
      run: async () => {
        const existing = JSON.parse((await ip(host, ['-j', 'route', 'show', cfg.cidr])).stdout.trim() || '[]') as { gateway?: string; dev?: string }[];
        if (existing.some((r) => r.gateway === hl.nsAddress && r.dev === hl.hostIfname)) return; // adopted
        await ip(host, ['route', 'replace', cfg.cidr, 'via', hl.nsAddress, 'dev', hl.hostIfname]);
        return async () => { await ip(host, ['route', 'del', cfg.cidr, 'via', hl.nsAddress, 'dev', hl.hostIfname], true); };
      },
    },
    {
      // Forwarding between the veth and the bridge happens inside the VM namespace only; the host is untouched.
      name: `forwarding inside ${ns}`,
      run: async () => { await run('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'], { netns: ns, timeoutMs: 15_000 }); },
    },
    wallsStep(cfg),
  );
  return undoOf(await runNetSteps(steps, opts), 'the host network');
}

/** Creates the VM's TAP where the bridge lives, enslaves it and brings it up. Returns its removal. */
export async function attachVm(cfg: NetConfig, plan: Pick<VmNetPlan, 'tap'> & { ip?: string }, opts: NetExecOptions = {}): Promise<Undo> {
  const ns = vmSide(cfg);
  const tap = plan.tap;
  const where = ns ? ` in ${ns}` : '';
  const stack = await runNetSteps([
    {
      name: `TAP ${tap}${where}`,
      run: async () => {
        const all = await links(ns);
        if (!all.has(cfg.bridge)) {
          throw new HangarError('NET_SETUP_FAILED', `bridge ${cfg.bridge}${where} does not exist: set up the host network first`, { link: cfg.bridge });
        }
        if (all.has(tap)) {
          // Never take over a device that may belong to a running VM.
          throw new HangarError('NET_SETUP_FAILED', `${tap}${where} already exists (orphan or in use)`, { link: tap });
        }
        await ip(ns, ['tuntap', 'add', 'dev', tap, 'mode', 'tap', ...tapOwnerArgs(cfg.tapOwner)]);
        return async () => { await ip(ns, ['link', 'del', tap], true); };
      },
    },
    { name: `TAP ${tap} on ${cfg.bridge}`, run: async () => { await ip(ns, ['link', 'set', tap, 'master', cfg.bridge]); } },
    // An isolated port's frames reach only the bridge itself: no VM reaches another at layer 2.
    { name: `TAP ${tap} isolated`, run: async () => { await isolatePort(ns, tap); } },
    { name: `TAP ${tap} up`, run: async () => { await ip(ns, ['link', 'set', tap, 'up']); } },
    {
      // A neighbour entry left by an earlier VM with this address (and another MAC) would blackhole the new one
      // until it expires: forget it now.
      name: `forget stale neighbour ${plan.ip ?? ''}`,
      run: async () => { if (plan.ip) await ip(ns, ['neigh', 'flush', 'to', plan.ip, 'dev', cfg.bridge], true); },
    },
  ], opts);
  return undoOf(stack, `TAP ${tap}`);
}

/** Removes a VM's TAP (idempotent): for a VM whose attach undo was lost with a controller restart. */
export async function detachVm(cfg: NetConfig, tap: string): Promise<void> {
  const ns = vmSide(cfg);
  if ((await links(ns)).has(tap)) await ip(ns, ['link', 'del', tap]);
}

export interface HangarTap {
  name: string;
  index: number;
  master: string | null;
  up: boolean;
}

/** TAP devices named like Hangar's (prefix + index), where Hangar's bridge lives: for orphan reclaim. */
export async function listHangarTaps(cfg: NetConfig): Promise<HangarTap[]> {
  const re = new RegExp(`^${cfg.tapPrefix.replace(/[-]/g, '\\-')}(\\d+)$`);
  const out: HangarTap[] = [];
  for (const l of (await links(vmSide(cfg))).values()) {
    const m = re.exec(l.ifname);
    if (!m || l.linkinfo?.info_kind !== 'tun') continue;
    out.push({ name: l.ifname, index: Number(m[1]), master: l.master ?? null, up: (l.flags ?? []).includes('UP') });
  }
  return out.sort((a, b) => a.index - b.index);
}

/**
 * Removes the host network whatever created it (idempotent), for teardown after a controller restart lost the
 * undo. Call it with no VM running: TAPs of running VMs go too.
 */
export async function removeHostNetwork(cfg: NetConfig): Promise<void> {
  if (cfg.mode === 'netns') {
    const hl = cfg.hostLink!;
    if ((await links(cfg.hostNetns)).has(hl.hostIfname)) await ip(cfg.hostNetns, ['link', 'del', hl.hostIfname]);
    // Deleting the namespace takes its bridge, TAPs and the other veth end with it.
    if ((await listNetns()).includes(cfg.netns!)) await run('ip', ['netns', 'del', cfg.netns!], { timeoutMs: 15_000 });
    return;
  }
  for (const t of await listHangarTaps(cfg)) await ip(cfg.hostNetns, ['link', 'del', t.name], true);
  if ((await links(cfg.hostNetns)).has(cfg.bridge)) await ip(cfg.hostNetns, ['link', 'del', cfg.bridge]);
}
