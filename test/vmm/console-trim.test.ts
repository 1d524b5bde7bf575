import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { droppedBefore, planConsoleTrim, trimConsoleLog, trimMarker } from '../../src/vmm/console-trim.js';

async function withLog(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-trim-'));
  try { await fn(join(dir, 'console.log')); } finally { await rm(dir, { recursive: true, force: true }); }
}

const lines = (from: number, n: number): string => Array.from({ length: n }, (_, i) => `console line ${String(from + i).padStart(8, '0')}`).join('\n') + '\n';

test('the plan: nothing within the cap; past it, the newest half of the cap is kept', () => {
  assert.equal(planConsoleTrim(0, 1000), null);
  assert.equal(planConsoleTrim(1000, 1000), null);
  assert.deepEqual(planConsoleTrim(1001, 1000), { keepFrom: 501 });
  assert.deepEqual(planConsoleTrim(64 * 2 ** 20 * 3, 64 * 2 ** 20), { keepFrom: 64 * 2 ** 20 * 3 - 32 * 2 ** 20 });
});

test('the marker line names what was dropped and is read back', () => {
  const m = trimMarker(12345, 1 << 20);
  assert.ok(m.endsWith('\n'));
  assert.equal(droppedBefore(m), 12345);
  assert.equal(droppedBefore('[    0.0] Linux version'), 0);
  assert.equal(droppedBefore(''), 0);
});

test('a log over the cap keeps its newest whole lines after a marker; one within it is left alone', () => withLog(async (path) => {
  assert.equal(await trimConsoleLog(path, 1 << 20), null, 'no log: nothing to do');
  const text = lines(0, 100_000); // 2.3 MB of 23-byte lines
  await writeFile(path, text);
  assert.equal(await trimConsoleLog(path, 4 << 20), null);
  const r = await trimConsoleLog(path, 1 << 20);
  assert.ok(r);
  const after = await readFile(path, 'utf8');
  assert.equal(after.length, r.size);
  assert.ok(r.size <= 1 << 20, `trimmed to ${r.size}`);
  const [first, ...rest] = after.split('\n');
  assert.equal(droppedBefore(first!), r.dropped);
  assert.equal(rest.join('\n'), text.slice(r.dropped), 'the kept part is the original tail');
  assert.match(rest[0]!, /^console line \d{8}$/, 'starting at a whole line');
  assert.ok(text.endsWith(rest.join('\n')));

  // A writer that opened the log O_APPEND (QEMU, the supervisor) goes on at the new end: no hole.
  const w = await open(path, 'a');
  await w.write(lines(100_000, 60_000));
  await w.close();
  const r2 = await trimConsoleLog(path, 1 << 20);
  assert.ok(r2);
  const again = await readFile(path, 'utf8');
  assert.equal((await stat(path)).size, r2.size);
  assert.ok(!again.includes('\0'));
  assert.equal(droppedBefore(again), r.dropped + r2.dropped, 'the marker counts every trim');
  assert.ok(again.endsWith('console line 00159999\n'));
  assert.equal(again.split('\n').filter((l) => l.startsWith('[hangar:')).length, 1, 'one marker line');
}));

test('a log of one huge line is still trimmed under the cap', () => withLog(async (path) => {
  await writeFile(path, Buffer.alloc(3 << 20, 'A'));
  const r = await trimConsoleLog(path, 1 << 20);
  assert.ok(r && r.size <= 1 << 20);
  const after = await readFile(path, 'utf8');
  assert.equal(droppedBefore(after), r.dropped);
  assert.ok(after.endsWith('AAAA'));
}));
