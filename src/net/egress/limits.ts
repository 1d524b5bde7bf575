// Per-VM bandwidth, both directions, with tc on the VM's interface in the VM namespace (the TAP, or a clone's
// VM-side veth). Towards the guest: a TBF as the interface's root qdisc (its egress is the guest's download).
// From the guest: its ingress redirected (u32 match-all + mirred) to an ifb of its own, shaped by a TBF there. This
// kernel has tbf, htb, ingress, u32, mirred and ifb but no police action or matchall, hence the ifb. Pure plans
// (`limitCommands`) and a thin executor; the undo removes all of it.
import { run } from '../../util/exec.js';
import type { Undo } from '../../util/steps.js';

export interface LimitTarget {
  netns: string | undefined;
  ifname: string;
  /** The VM's allocation index: its ifb is hgifb<index>. */
  index: number;
}

export const ifbName = (index: number): string => `hgifb${index}`;

/** TBF parameters for a rate: a burst of 20 ms of traffic (at least 32 KiB) and 50 ms of queue. Pure. */
export function tbfArgs(mbit: number): string[] {
  const bytesPerS = (mbit * 1_000_000) / 8;
  const burst = Math.max(32 * 1024, Math.round(bytesPerS * 0.02));
  return ['tbf', 'rate', `${mbit}mbit`, 'burst', String(burst), 'latency', '50ms'];
}

/** The tc/ip commands (argument arrays) that shape one VM at `mbit` in both directions. Pure. */
export function limitCommands(t: LimitTarget, mbit: number): string[][] {
  const ifb = ifbName(t.index);
  return [
    ['ip', 'link', 'add', ifb, 'type', 'ifb'],
    ['ip', 'link', 'set', ifb, 'up'],
    ['tc', 'qdisc', 'replace', 'dev', t.ifname, 'root', ...tbfArgs(mbit)],
    ['tc', 'qdisc', 'add', 'dev', t.ifname, 'handle', 'ffff:', 'ingress'],
    ['tc', 'filter', 'add', 'dev', t.ifname, 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', ifb],
    ['tc', 'qdisc', 'replace', 'dev', ifb, 'root', ...tbfArgs(mbit)],
  ];
}

export function unlimitCommands(t: LimitTarget): string[][] {
  return [
    ['tc', 'qdisc', 'del', 'dev', t.ifname, 'root'],
    ['tc', 'qdisc', 'del', 'dev', t.ifname, 'ingress'],
    ['ip', 'link', 'del', ifbName(t.index)],
  ];
}

async function runAll(t: LimitTarget, cmds: string[][], allowFailure: boolean): Promise<void> {
  for (const [cmd, ...args] of cmds) await run(cmd!, args, { netns: t.netns, allowFailure, timeoutMs: 15_000 });
}

/** Shapes the VM at `mbit` (null: no limit, and any earlier one removed). The undo removes the shaping. */
export async function applyLimits(t: LimitTarget, mbit: number | null): Promise<Undo> {
  await runAll(t, unlimitCommands(t), true);
  if (mbit === null) return async () => undefined;
  await runAll(t, limitCommands(t, mbit), false);
  return () => runAll(t, unlimitCommands(t), true);
}
