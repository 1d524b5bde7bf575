// The E2B REST API's shapes mapped to Hangar's, pure: a create body → a Hangar create request (template = a profile
// or a snapshot id; timeout; metadata; envs; internet access and allow/deny lists → the VM's network policy), a VM
// and its E2B fields → the sandbox view the SDK reads, the list's metadata/state filters and paging tokens.
// Field names are the wire's (E2B's OpenAPI: sandboxID, templateID, envdAccessToken, …).
import { randomBytes } from 'node:crypto';
import type { VmRecord } from '../domain/vm.js';
import { HangarError } from '../errors.js';
import { isSnapshotId } from '../snapshot/manifest.js';
import type { CreateVmInput } from '../vm/input.js';

/** The envd version Hangar answers as: the SDK gates features on it (closeStdin ≥ 0.5.2, octet-stream uploads ≥ 0.5.7). */
export const ENVD_VERSION = '0.5.7';
/** The SDK's default template name: Hangar's default profile. */
export const DEFAULT_TEMPLATE = 'base';
/** E2B's default sandbox timeout when a create names none, seconds. */
export const DEFAULT_TIMEOUT_S = 300;
/** The longest timeout accepted, seconds (E2B's: 24 h). */
export const MAX_TIMEOUT_S = 86_400;

/** What Hangar keeps per sandbox beside its VM. */
export interface E2bFields {
  templateId: string;
  metadata: Record<string, string>;
  envs: Record<string, string>;
  envdAccessToken: string;
  startedAt: string;
  /** When the timeout acts (ms since the epoch). */
  endAt: number;
  /** On timeout: pause (hibernate) instead of kill. */
  autoPause: boolean;
}

export interface E2bCreateBody {
  templateID?: string;
  timeout?: number;
  metadata?: Record<string, string>;
  envVars?: Record<string, string>;
  allow_internet_access?: boolean;
  network?: { allowOut?: string[]; denyOut?: string[] };
  autoPause?: boolean;
}

/** The CIDR E2B names "all traffic" with. */
const ALL_TRAFFIC = '0.0.0.0/0';

/** E2B's network options → Hangar's network policy (undefined: the configured default). */
export function networkPolicyOf(b: Pick<E2bCreateBody, 'allow_internet_access' | 'network'>): CreateVmInput['network'] {
  const allow = b.network?.allowOut ?? [];
  const deny = b.network?.denyOut ?? [];
  if (b.allow_internet_access === false && allow.length === 0) return { egress: { mode: 'none' } };
  const denyAll = deny.includes(ALL_TRAFFIC) || b.allow_internet_access === false;
  const denyRest = deny.filter((d) => d !== ALL_TRAFFIC);
  if (allow.length > 0 && (denyAll || deny.length === 0)) {
    return { egress: { mode: 'allowlist', allow, ...(denyRest.length ? { deny: denyRest } : {}) } };
  }
  if (denyAll) return { egress: { mode: 'none' } };
  if (denyRest.length) return { egress: { mode: 'internet', deny: denyRest } };
  return undefined;
}

/** The Hangar create request for an E2B create body; `snapshots` are the ids a template may name. */
export function createInputOf(b: E2bCreateBody, isSnapshot: (ref: string) => boolean): CreateVmInput {
  const template = b.templateID ?? DEFAULT_TEMPLATE;
  const network = networkPolicyOf(b);
  const base: CreateVmInput = network ? { network } : {};
  if (isSnapshot(template)) return { ...base, fromSnapshot: template };
  // Shaped like a snapshot id but none: exactly as another tenant's (404), never taken for a profile.
  const ref: unknown = template;
  if (isSnapshotId(ref)) throw new HangarError('SNAPSHOT_NOT_FOUND', `no snapshot ${template}`, { id: template });
  if (template === DEFAULT_TEMPLATE) return base;
  if (template !== 'desktop' && template !== 'browser') {
    throw new HangarError('INVALID_ARGUMENT', `template ${JSON.stringify(template.slice(0, 64))} is neither a Hangar profile (desktop, browser) nor a snapshot id`, { field: 'templateID', in: 'body', reason: 'unknown' });
  }
  return { ...base, profile: template };
}

/** A fresh envd access token (the X-Access-Token of the sandbox's envd calls). */
export const newAccessToken = (): string => randomBytes(24).toString('base64url');

/** The timeout in seconds, checked (0 or less is refused; over the maximum is clamped). */
export function timeoutSeconds(t: number | undefined): number {
  if (t === undefined) return DEFAULT_TIMEOUT_S;
  if (!Number.isInteger(t) || t < 1) throw new HangarError('INVALID_ARGUMENT', 'timeout must be a whole number of seconds, at least 1', { field: 'timeout', in: 'body', reason: 'range' });
  return Math.min(t, MAX_TIMEOUT_S);
}

export type SandboxState = 'running' | 'paused';

/** A VM's state as E2B names it: a hibernated or paused VM is paused; everything else that lives is running. */
export const sandboxState = (vm: Pick<VmRecord, 'state' | 'hibernation'>): SandboxState => (vm.hibernation || vm.state === 'paused' ? 'paused' : 'running');

/** The sandbox as GET /sandboxes/:id and the list answer it. */
export function sandboxView(vm: VmRecord, f: E2bFields): Record<string, unknown> {
  return {
    sandboxID: vm.id, templateID: f.templateId, alias: vm.name, clientID: 'hangar',
    startedAt: f.startedAt, endAt: new Date(f.endAt).toISOString(), state: sandboxState(vm),
    cpuCount: vm.vcpus, memoryMB: vm.memMiB, diskSizeMB: vm.diskMiB ?? 0, envdVersion: ENVD_VERSION,
    metadata: f.metadata,
  };
}

/** What create and connect answer. */
export const sandboxCreated = (vm: VmRecord, f: E2bFields): Record<string, unknown> => ({
  sandboxID: vm.id, templateID: f.templateId, alias: vm.name, clientID: 'hangar', envdVersion: ENVD_VERSION, envdAccessToken: f.envdAccessToken,
});

/**
 * The list's `metadata` query (the SDK sends `k=v&k2=v2` with each key and value URI-encoded) as pairs;
 * undefined or empty: no filter.
 */
export function parseMetadataQuery(q: string | undefined): [string, string][] {
  if (!q) return [];
  return [...new URLSearchParams(q)].map(([k, v]) => [decodeURIComponent(k), decodeURIComponent(v)]);
}

/** The list's `state` query: comma-separated (the SDK sends form style, not exploded). */
export function parseStateQuery(q: string | string[] | undefined): SandboxState[] {
  const all = [q ?? []].flat().flatMap((s) => s.split(',')).filter(Boolean);
  if (all.length === 0) return ['running', 'paused'];
  for (const s of all) if (s !== 'running' && s !== 'paused') throw new HangarError('INVALID_ARGUMENT', `state ${JSON.stringify(s.slice(0, 32))} is neither running nor paused`, { field: 'state', in: 'query', reason: 'enum' });
  return all as SandboxState[];
}

export interface ListItem { vm: VmRecord; fields: E2bFields }

/**
 * One page of sandboxes: those matching every metadata pair and a state, oldest first (then by id); `nextToken`
 * is the id the next page starts after (opaque to the SDK).
 */
export function listPage(items: ListItem[], q: { metadata: [string, string][]; states: SandboxState[]; limit?: number; nextToken?: string }): { page: ListItem[]; nextToken: string | null } {
  const limit = Math.max(1, Math.min(q.limit ?? 100, 1000));
  const sorted = items
    .filter((i) => q.metadata.every(([k, v]) => i.fields.metadata[k] === v) && q.states.includes(sandboxState(i.vm)))
    .sort((a, b) => (a.fields.startedAt < b.fields.startedAt ? -1 : a.fields.startedAt > b.fields.startedAt ? 1 : a.vm.id < b.vm.id ? -1 : 1));
  const after = q.nextToken ? Buffer.from(q.nextToken, 'base64url').toString() : null;
  const start = after ? sorted.findIndex((i) => i.vm.id === after) + 1 : 0;
  const page = sorted.slice(start, start + limit);
  const more = start + limit < sorted.length;
  return { page, nextToken: more && page.length ? Buffer.from(page[page.length - 1]!.vm.id).toString('base64url') : null };
}
