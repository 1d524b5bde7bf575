// Hangar's one way to bound the time of async work: the work gets an AbortSignal that fires on timeout (or when a
// parent signal aborts), the caller gets the error it chose, and nothing outlives the call: the timer is cleared and
// the parent listener removed as soon as the work settles. Plus an abortable sleep.
//
// The timer is an ordinary (ref'd) setTimeout while the work runs, like the hand-written races it replaces: a
// process waiting only on a timed-out thing still gets its timeout error instead of exiting silently (which an
// unref'd AbortSignal.timeout would allow).

/**
 * Runs `work(signal)` and settles with its result, unless `ms` passes first (rejects with `onTimeout()`, then aborts
 * `signal` with that error) or `parent` aborts (rejects with and aborts with `parent.reason`). A parent already
 * aborted rejects without starting the work. `ms` = Infinity means no time limit. A late result of the work is
 * dropped: work that holds resources releases them when its signal aborts (or the caller does, see the dial in
 * src/desktop/bridge.ts).
 */
export async function withTimeout<T>(work: (signal: AbortSignal) => Promise<T> | T, ms: number, onTimeout: () => Error, parent?: AbortSignal): Promise<T> {
  parent?.throwIfAborted();
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onParentAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    // Reject first, so the race settles with this reason even if the work rejects synchronously on abort.
    const stop = (reason: unknown): void => { reject(reason); ac.abort(reason); };
    if (Number.isFinite(ms)) timer = setTimeout(() => stop(onTimeout()), Math.max(0, ms));
    if (parent) {
      onParentAbort = () => stop(parent.reason);
      parent.addEventListener('abort', onParentAbort, { once: true });
    }
  });
  try {
    return await Promise.race([Promise.resolve().then(() => work(ac.signal)), stopped]);
  } finally {
    clearTimeout(timer);
    if (onParentAbort) parent!.removeEventListener('abort', onParentAbort);
  }
}

/** `p`'s value if it settles within `ms`, else `fallback` (a rejection of `p` within `ms` rejects). */
export async function waitAtMost<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  const timedOut = new Error('timed out');
  try {
    return await withTimeout(() => p, ms, () => timedOut);
  } catch (e) {
    if (e === timedOut) return fallback;
    throw e;
  }
}

/** Resolves after `ms`; rejects with `signal.reason` as soon as `signal` aborts (the timer is cleared). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
