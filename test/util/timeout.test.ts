// withTimeout, waitAtMost and sleep: results, the chosen timeout error, the work's signal, parent aborts, and no
// timer or listener left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { promisify } from 'node:util';
import { sleep, waitAtMost, withTimeout } from '../../src/util/timeout.js';

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

test('withTimeout resolves with the work result, and its signal never aborts', async () => {
  let seen: AbortSignal | undefined;
  const v = await withTimeout(async (signal) => { seen = signal; await sleep(5); return 42; }, 1000, () => new Error('late'));
  assert.equal(v, 42);
  assert.equal(seen?.aborted, false);
  assert.equal(await withTimeout(() => 'sync', 1000, () => new Error('late')), 'sync', 'a synchronous result works too');
});

test('withTimeout rejects with the work error, not the timeout error', async () => {
  await assert.rejects(withTimeout(() => Promise.reject(new Error('boom')), 1000, () => new Error('late')), /boom/);
  await assert.rejects(withTimeout(() => { throw new Error('sync boom'); }, 1000, () => new Error('late')), /sync boom/);
});

test('on timeout: rejects with the given error and aborts the work signal with it', async () => {
  const err = new Error('not within 20 ms');
  let seen: AbortSignal | undefined;
  const t0 = Date.now();
  await assert.rejects(withTimeout((signal) => { seen = signal; return never(); }, 20, () => err), (e) => e === err);
  assert.ok(Date.now() - t0 >= 15, 'not before the time');
  assert.equal(seen?.aborted, true);
  assert.equal(seen?.reason, err);
});

test('work that rejects as soon as its signal aborts still yields the timeout error', async () => {
  const err = new Error('timeout');
  await assert.rejects(withTimeout((signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')))), 10, () => err), (e) => e === err);
});

test('a parent abort propagates: rejects with its reason and aborts the work signal', async () => {
  const parent = new AbortController();
  let seen: AbortSignal | undefined;
  const p = withTimeout((signal) => { seen = signal; return never(); }, 60_000, () => new Error('late'), parent.signal);
  await sleep(5);
  const why = new Error('cancelled by the caller');
  parent.abort(why);
  await assert.rejects(p, (e) => e === why);
  assert.equal(seen?.reason, why);
});

test('a parent already aborted rejects without starting the work', async () => {
  const parent = new AbortController();
  parent.abort(new Error('already'));
  let started = false;
  await assert.rejects(withTimeout(() => { started = true; return Promise.resolve(1); }, 1000, () => new Error('late'), parent.signal), /already/);
  assert.equal(started, false);
});

test('nothing is left behind: no timer, no parent listener (resolved, rejected or timed out)', async () => {
  const parent = new AbortController();
  const before = timers();
  await withTimeout(() => Promise.resolve(1), 60_000, () => new Error('late'), parent.signal);
  await assert.rejects(withTimeout(() => Promise.reject(new Error('x')), 60_000, () => new Error('late'), parent.signal));
  await assert.rejects(withTimeout(() => never(), 1, () => new Error('late'), parent.signal));
  assert.equal(timers(), before, 'every timer was cleared');
  assert.equal(getEventListeners(parent.signal, 'abort').length, 0, 'every parent listener was removed');
});

test('a process whose only work finished does not wait for a long timeout', async () => {
  const url = new URL('../../src/util/timeout.js', import.meta.url).href;
  const script = `import { withTimeout, sleep } from ${JSON.stringify(url)};
    console.log(await withTimeout(() => sleep(10), 60_000, () => new Error('late')) ?? 'done');`;
  const t0 = Date.now();
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 });
  assert.equal(stdout.trim(), 'done');
  assert.ok(Date.now() - t0 < 15_000, `exited after ${Date.now() - t0} ms`);
});

test('Infinity means no time limit', async () => {
  const before = timers();
  const p = withTimeout(() => sleep(20).then(() => 'ok'), Infinity, () => new Error('late'));
  assert.equal(timers(), before, 'no timer for the limit (the work starts a tick later)');
  assert.equal(await p, 'ok');
});

test('waitAtMost: the value if in time, else the fallback; a rejection in time rejects', async () => {
  assert.equal(await waitAtMost(sleep(1).then(() => 'v'), 1000, null), 'v');
  assert.equal(await waitAtMost(never<string>(), 10, null), null);
  await assert.rejects(waitAtMost(Promise.reject(new Error('gone')), 1000, null), /gone/);
});

test('sleep waits, and an abort rejects it early with the reason and clears its timer', async () => {
  const t0 = Date.now();
  await sleep(20);
  assert.ok(Date.now() - t0 >= 15);
  const ac = new AbortController();
  const before = timers();
  const p = sleep(60_000, ac.signal);
  assert.equal(timers(), before + 1);
  const why = new Error('stop');
  ac.abort(why);
  await assert.rejects(p, (e) => e === why);
  assert.equal(timers(), before, 'the timer was cleared');
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  await assert.rejects(sleep(10, ac.signal), (e) => e === why, 'an aborted signal rejects at once');
  const ok = new AbortController();
  await sleep(1, ok.signal);
  assert.equal(getEventListeners(ok.signal, 'abort').length, 0, 'a completed sleep removes its listener');
});
