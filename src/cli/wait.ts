// Waiting for a VM to become ready, for `vm create`, `vm start` and `vm resume`. The controller waits itself
// when it can (`?wait=true&timeoutMs=N`); a controller that refuses or ignores the query is polled every 250 ms.
// Either way the answer is the VM: ready, or not ready with its last error (the commands then exit 1).
import { exitCodeOf, HangarError, isHangarError } from '../errors.js';
import type { ApiClient } from './client.js';
import type { CliIO } from './command.js';
import { stateOf, type VmInfo } from './vm-view.js';

export const POLL_MS = 250;
/** fetch() gives up on an answer's headers after 300 s: the server's own wait stays below that. */
const SERVER_WAIT_MAX_MS = 240_000;

export interface WaitOptions {
  io: CliIO;
  quiet: boolean;
  timeoutMs: number;
  pollMs?: number;
}

export interface Outcome {
  vm: VmInfo;
  ready: boolean;
  /** Why the command did nothing (already running) or stopped waiting. */
  note?: string;
}

const sameError = (a: VmInfo, b: VmInfo): boolean => JSON.stringify(a.lastError ?? null) === JSON.stringify(b.lastError ?? null);

/** Whether `now` is an end of the wait that started at `before`: ready, failed, or back to stopped with a new error. */
function settled(before: VmInfo, now: VmInfo, seenActive: boolean): boolean {
  if (now.state === 'ready' || now.state === 'failed' || now.state === 'paused') return true;
  if (now.state === 'stopped') return seenActive || !sameError(before, now);
  return false;
}

/** Polls the VM until it settles or the time is up, printing each state it passes through on stderr. */
export async function settle(api: ApiClient, before: VmInfo, first: VmInfo, o: WaitOptions): Promise<Outcome> {
  const t0 = Date.now();
  let v = first;
  let shown = '';
  let seenActive = false;
  for (;;) {
    const s = stateOf(v);
    if (!o.quiet && s !== shown) o.io.err(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${v.id} ${s}\n`);
    shown = s;
    if (v.state === 'booting' || v.state === 'creating') seenActive = true;
    if (settled(before, v, seenActive)) return { vm: v, ready: v.state === 'ready' };
    if (Date.now() - t0 >= o.timeoutMs) return { vm: v, ready: false, note: `not ready within ${Math.round(o.timeoutMs / 1000)}s (still ${s}); it may still come up: hangar vm show ${v.id}` };
    await new Promise((r) => setTimeout(r, o.pollMs ?? POLL_MS));
    v = await api.request<VmInfo>('GET', `/v1/vms/${encodeURIComponent(v.id)}`);
  }
}

/** A 400 about the wait query itself: the controller does not know `wait`/`timeoutMs` on this route. */
function queryRefused(e: unknown): boolean {
  if (!isHangarError(e) || (e.code !== 'INVALID_ARGUMENT' && e.code !== 'UNKNOWN_FIELD')) return false;
  const field = (e.details as { field?: unknown }).field;
  return field === 'wait' || field === 'timeoutMs' || /querystring/.test(e.message);
}

const ACTIVE = new Set(['creating', 'booting']);

/**
 * `vm start` / `vm resume` of `vm`: a VM already running (or already booting, for start) is no error; with
 * `wait` the VM is followed until it is ready or failed.
 */
export async function startLike(api: ApiClient, vm: VmInfo, action: 'start' | 'resume', wait: boolean, o: WaitOptions): Promise<Outcome> {
  const base = `/v1/vms/${encodeURIComponent(vm.id)}/${action}`;
  const get = (): Promise<VmInfo> => api.request<VmInfo>('GET', `/v1/vms/${encodeURIComponent(vm.id)}`);
  let v: VmInfo;
  try {
    try {
      v = await api.request<VmInfo>('POST', wait ? `${base}?wait=true&timeoutMs=${Math.min(o.timeoutMs, SERVER_WAIT_MAX_MS)}` : base);
    } catch (e) {
      if (!wait || !queryRefused(e)) throw e;
      v = await api.request<VmInfo>('POST', base);
    }
  } catch (e) {
    if (!isHangarError(e)) throw e;
    if (e.code === 'VM_INVALID_STATE') {
      const now = await get().catch(() => null);
      if (now?.state === 'ready') return { vm: now, ready: true, note: `${now.id} (${now.name}) is already running` };
      if (now && action === 'start' && ACTIVE.has(now.state)) return wait ? settle(api, vm, now, o) : { vm: now, ready: false, note: `${now.id} is already starting` };
      const hint = now?.state === 'paused' ? `it is paused: hangar vm resume ${now.id}` : now?.state === 'stopped' && action === 'resume' ? `it is stopped: hangar vm start ${now.id}` : undefined;
      throw hint ? new HangarError(e.code, e.message, { ...e.details, hint }, { cause: e }) : e;
    }
    // Input, auth and reachability errors are what they are; anything else may be the boot failing: the VM says.
    if ([2, 3, 5].includes(exitCodeOf(e.code))) throw e;
    const now = await get().catch(() => null);
    if (!now) throw e;
    if (now.state === 'failed' || (now.state === 'stopped' && !sameError(vm, now))) return { vm: now, ready: false };
    if (!wait || now.state === 'ready') return { vm: now, ready: now.state === 'ready' };
    if (!ACTIVE.has(now.state) && now.state !== 'stopped') throw e;
    v = now;
  }
  if (!wait) return { vm: v, ready: v.state === 'ready' };
  return settle(api, vm, v, o);
}
