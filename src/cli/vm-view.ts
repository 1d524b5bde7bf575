// How the CLI shows VMs: the `vm ls` table and the `vm show` fields, from the API's VM view. Pure (the clock is
// a parameter).
import type { VmView } from '../api/routes.js';
import { table } from './command.js';

/** The API's VM view with what snapshots add (older controllers may lack them). */
export type VmInfo = VmView & {
  hibernated?: boolean;
  clone?: { snapshot: string; netns: string; guestIp: string } | null;
};

/** 'stopped' alone hides that a hibernated VM comes back where it was. */
export const stateOf = (v: VmInfo): string => (v.hibernated && v.state === 'stopped' ? 'hibernated' : v.state);

function span(s: number): string {
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172_800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86_400)}d`;
}

export const fmtAge = (iso: string, now = Date.now()): string => span(Math.max(0, Math.round((now - Date.parse(iso)) / 1000)));

/** 'in 14m', 'expired', or '-' for no expiry. */
export function fmtExpires(iso: string | null, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.round((Date.parse(iso) - now) / 1000);
  return s <= 0 ? 'expired' : `in ${span(s)}`;
}

const fmtBoot = (ms: number | null): string => (ms ? `${(ms / 1000).toFixed(1)}s` : '-');

export function vmTable(vms: VmInfo[], now = Date.now()): string {
  return table(['ID', 'NAME', 'STATE', 'IP', 'VMM', 'CPU', 'MEM', 'BOOT', 'AGE', 'EXPIRES'], vms.map((v) => [
    v.id, v.name, stateOf(v), v.network?.ip ?? '-', v.vmm, v.vcpus, `${v.memMiB}M`, fmtBoot(v.bootMs), fmtAge(v.createdAt, now), fmtExpires(v.expiresAt, now),
  ]));
}

/** `vm show`: one field per line. */
export function vmDetails(v: VmInfo, now = Date.now()): string {
  const n = v.network;
  const ttl = v.ttlSeconds ? `${v.ttlSeconds}s (${span(v.ttlSeconds)})` : 'none';
  const rows: [string, string][] = [
    ['id', v.id],
    ['name', v.name],
    ['state', stateOf(v) + (v.hibernated && v.state !== 'stopped' ? ' (hibernated)' : '')],
    ['image', v.image],
    ['profile', v.profile],
    ['vmm', v.vmm],
    ['vCPUs', String(v.vcpus)],
    ['memory', `${v.memMiB} MiB`],
    ['IP', n?.ip || '-'],
    ['MAC', n?.mac || '-'],
    ['TAP', n?.tap || '-'],
    ['gateway', n?.gateway || '-'],
    ['TTL', ttl],
    ['expires', v.expiresAt ? `${v.expiresAt} (${fmtExpires(v.expiresAt, now)})` : '-'],
    ['clone of', v.clone ? `${v.clone.snapshot} (guest IP ${v.clone.guestIp}, netns ${v.clone.netns})` : '-'],
    ['last error', v.lastError ? `${v.lastError.code}: ${v.lastError.message}` : '-'],
    ['boot time', fmtBoot(v.bootMs)],
    ['pid', v.pid === null ? '-' : String(v.pid)],
    ['created', `${v.createdAt} (${fmtAge(v.createdAt, now)} ago)`],
    ['updated', `${v.updatedAt} (${fmtAge(v.updatedAt, now)} ago)`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length)) + 1;
  return rows.map(([k, val]) => `${`${k}:`.padEnd(w)} ${val}\n`).join('');
}

/** The last lines of the console a failed boot recorded with its error ('' when none). */
export function consoleTailOf(v: VmInfo, lines = 20): string {
  const tail = (v.lastError?.details as { consoleTail?: unknown } | undefined)?.consoleTail;
  if (typeof tail !== 'string' || !tail.trim()) return '';
  return tail.replace(/\n$/, '').split('\n').slice(-lines).map((l) => `  | ${l}`).join('\n') + '\n';
}

/** What a user needs when a VM did not become ready: its error, the console's last lines, where to look next. */
export function bootFailure(v: VmInfo): string {
  const why = v.lastError ? `${v.lastError.code}: ${v.lastError.message}` : `it is ${stateOf(v)}`;
  const tail = consoleTailOf(v);
  return `hangar: ${v.id} (${v.name}) did not become ready: ${why}\n`
    + (tail ? `console (last lines):\n${tail}` : '')
    + `next: hangar doctor --vm ${v.id}   hangar vm console ${v.id}\n`;
}
